"""SNOMED CT codes for DICOM-SEG segments, looked up from label names.

A DICOM Segmentation describes each segment by a *property category* (DICOM context group 7150:
anatomical structure, morphologically abnormal structure, tissue...) and a *property type* (the
concept itself: liver, neoplasm...). Viewers and archives use the codes, not the free-text label,
to know what a segment is. :func:`segment_codes` finds the concept named like the label in the
SNOMED CT dictionary that pydicom ships (no network): ``liver`` -> Liver (10200004),
``white_matter`` -> White Matter (389080008), ``tumour`` -> Tumor (108369006). British spellings
(grey, tumour, oedema) are tried in their American form, and ``left``/``right`` words are
dropped (``kidney_left`` -> Kidney). Lesion words (lesion, tumour, metastasis, nodule, mass,
cancer, carcinoma, cyst, oedema, necrosis) make the category *morphologically abnormal structure*
and, when no concept matches the whole name, the concept of that word (``lung_nodule`` ->
Nodule) or else Lesion (52988006). Any other label keeps the generic Tissue / Tissue
(85756007), which every reader accepts.
"""

from __future__ import annotations

import re
from typing import Any

_AMERICAN = {"grey": "gray", "tumour": "tumor", "oedema": "edema", "haemorrhage": "hemorrhage"}
_SIDES = {"left", "right", "l", "r"}
_ABNORMAL = ("lesion", "tumor", "metasta", "nodule", "mass", "cancer", "carcinoma", "cyst")
_ABNORMAL += ("edema", "necrosis", "hemorrhage", "neoplasm")


def segment_codes(name: str) -> tuple[Any, Any]:
    """SNOMED CT (category, type) codes for a segment named ``name``.

    Returns
    -------
    tuple of pydicom.sr.coding.Code
        The segmented property category (context group 7150) and type.
    """
    from pydicom.sr.codedict import codes

    words = [_AMERICAN.get(w, w) for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    abnormal = any(w.startswith(_ABNORMAL) for w in words)
    concept = _concept(codes.SCT, words) or _concept(
        codes.SCT, [w for w in words if w not in _SIDES]
    )
    if abnormal:
        finding = next(w for w in words if w.startswith(_ABNORMAL))
        concept = concept or _concept(codes.SCT, [finding]) or codes.SCT.Lesion
        return codes.cid7150.MorphologicallyAbnormalStructure, concept
    if concept is None:
        return codes.cid7150.Tissue, codes.SCT.Tissue
    return codes.cid7150.AnatomicalStructure, concept


def _concept(scheme: Any, words: list[str]) -> Any:
    """The SNOMED CT concept whose pydicom keyword is the CamelCase of ``words``, or None."""
    if not words:
        return None
    keyword = "".join(w.capitalize() for w in words)
    try:
        return getattr(scheme, keyword)
    except AttributeError:
        return None
