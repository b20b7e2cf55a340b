"""Words: the shipped table of anatomical synonyms, plural folding and spelling correction.

Every word of a query and of a class name goes through :func:`normalise_words`, so "hepatic",
"livers" and "Liver" all become ``liver``, "WM" and "white-matter" become ``white matter``, and
"tumours" becomes ``tumor``. A word that is still unknown is corrected against the words the
query language knows (:func:`correct`) with RapidFuzz's edit-distance ratio, so "lver" reads as
``liver``; the correction is reported, never silent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rapidfuzz import fuzz, process

SYNONYMS: dict[str, tuple[str, ...]] = {
    # abdomen and thorax
    "liver": ("hepatic", "hepar", "hepato"),
    "kidney": ("renal", "nephric"),
    "lung": ("pulmonary", "pulmonic", "pulmo"),
    "spleen": ("splenic", "lien"),
    "pancreas": ("pancreatic",),
    "stomach": ("gastric",),
    "gallbladder": ("gall bladder", "cholecyst", "biliary vesicle"),
    "urinary bladder": ("bladder", "vesical"),
    "prostate": ("prostatic",),
    "heart": ("cardiac",),
    "aorta": ("aortic",),
    "esophagus": ("oesophagus", "esophageal", "oesophageal"),
    "colon": ("colonic", "large bowel", "large intestine"),
    "small bowel": ("small intestine", "ileum and jejunum"),
    "duodenum": ("duodenal",),
    "adrenal gland": ("adrenal", "suprarenal gland", "suprarenal"),
    "thyroid": ("thyroid gland",),
    "lymph node": ("ln", "node", "nodal"),
    "vertebra": ("vertebral body", "vertebral"),
    "rib": ("costal",),
    "bone": ("osseous", "skeletal"),
    "muscle": ("muscular",),
    "fat": ("adipose", "adipose tissue"),
    "breast": ("mammary",),
    # brain
    "brain": ("cerebral", "cerebrum", "encephalon"),
    "white matter": ("wm", "cerebral white matter"),
    "gray matter": ("gm", "grey matter", "cortex", "cortical"),
    "cerebrospinal fluid": ("csf", "liquor"),
    "ventricle": ("ventricular",),
    "cerebellum": ("cerebellar",),
    "brainstem": ("brain stem",),
    "hippocampus": ("hippocampal",),
    "thalamus": ("thalamic",),
    "skull": ("cranium", "calvarium"),
    # lesions (BraTS names and general words)
    "tumor": ("tumour", "neoplasm", "neoplasia"),
    "metastasis": ("met", "metastatic", "secondary", "metastatic lesion"),
    "enhancing tumor": ("et", "enhancing tumour"),
    "tumor core": ("tc", "tumour core"),
    "whole tumor": ("wt", "whole tumour"),
    "edema": ("oedema", "peritumoral edema", "ed", "swelling"),
    "necrosis": ("necrotic core", "necrotic", "ncr", "net"),
    "lesion": ("finding", "abnormality", "focus", "spot"),
    "nodule": ("nodular",),
    "cyst": ("cystic",),
    "carcinoma": ("hcc", "cancer"),
    # sides
    "in liver": ("intrahepatic",),
    "in spleen": ("intrasplenic",),
    "in kidney": ("intrarenal",),
    "in lung": ("intrapulmonary",),
    "in brain": ("intracerebral", "intracranial"),
    "left": ("lt", "sinister", "left-sided", "left sided"),
    "right": ("rt", "dexter", "right-sided", "right sided"),
}
"""Canonical phrase -> aliases. Applied to query words and to class names alike."""

IRREGULAR_PLURALS = {
    "metastases": "metastasis",
    "axes": "axis",
    "mets": "metastasis",
    "foci": "focus",
    "vertebrae": "vertebra",
    "nuclei": "nucleus",
    "hippocampi": "hippocampus",
    "thalami": "thalamus",
    "lymph nodes": "lymph node",
    "masses": "mass",
    "abscesses": "abscess",
    "necroses": "necrosis",
    "neoplasms": "neoplasm",
    "bronchi": "bronchus",
}
_KEEP_S = {
    "pancreas",
    "was",
    "has",
    "gas",
    "as",
    "its",
    "this",
    "always",
    "does",
    "yes",
    "lies",
    "series",
}
_NOT_PLURAL = ("ss", "us", "is")
"""Endings of singular nouns that end in s (mass, thalamus, metastasis, pelvis)."""
_TOKEN = re.compile(r"\d+(?:\.\d+)?|(?:cm|mm)3\b|[a-z]+(?:'[a-z]+)?|[;,()<>≤≥×#%]")
_UNIT_GLUE = re.compile(r"(\d)(ml|cc|cm3|cm³|mm3|mm³|mm|cm|l)\b")


def tokenize(text: str) -> list[str]:
    """Lower-case word, number and punctuation tokens; ``5ml`` -> ``5 ml``, hyphens split words.

    ``x`` between two numbers (``30 x 20 mm``) becomes ``×``; ``cm³`` becomes ``cm3``.
    """
    text = text.lower().replace("cm³", "cm3").replace("mm³", "mm3")
    text = re.sub(r"(?<=[a-z])'s\b", "", text)  # possessive: "the liver's lesions"
    text = _UNIT_GLUE.sub(r"\1 \2", text)
    text = re.sub(r"(\d)\s*[x*]\s*(\d)", r"\1 × \2", text)
    text = re.sub(r"[-_/]", " ", text)
    return _TOKEN.findall(text)


def singular(word: str) -> tuple[str, bool]:
    """The singular of an English noun and whether ``word`` was plural (simple rules)."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word], True
    if len(word) <= 3 or word in _KEEP_S or not word.endswith("s") or word.endswith(_NOT_PLURAL):
        return word, False
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y", True
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2], True
    return word[:-1], True


def _alias_table() -> dict[tuple[str, ...], tuple[str, ...]]:
    table: dict[tuple[str, ...], tuple[str, ...]] = {}
    for canonical, aliases in SYNONYMS.items():
        target = tuple(canonical.split())
        for alias in aliases:
            table[tuple(tokenize(alias))] = target
    return table


ALIASES = _alias_table()
_LONGEST_ALIAS = max(len(key) for key in ALIASES)


def normalise_words(
    words: Iterable[str], known: set[str] | None = None
) -> tuple[list[tuple[str, bool]], list[tuple[str, str]]]:
    """Canonical words with a plural flag: plurals folded, misspellings fixed, aliases replaced.

    Parameters
    ----------
    words : iterable of str
        Tokens from :func:`tokenize`.
    known : set of str, optional
        Words the caller understands (singular forms). A word outside it and outside the
        synonym table is corrected with :func:`correct` when a close enough match exists.

    Returns
    -------
    words : list of (word, was_plural)
        One entry per canonical word; a multi-word alias ("gall bladder") gives its canonical
        words, a multi-word canonical phrase ("white matter" for "wm") gives several entries.
    corrections : list of (written, read as)
    """
    folded = [singular(w) for w in words]
    corrections: list[tuple[str, str]] = []
    if known is not None:
        vocabulary = known | VOCABULARY
        for k, (word, plural) in enumerate(folded):
            if word in vocabulary or not word.isalpha():
                continue
            fixed = correct(word, vocabulary)
            if fixed is not None:
                corrections.append((word, fixed))
                folded[k] = (fixed, plural)
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(folded):
        for size in range(min(_LONGEST_ALIAS, len(folded) - i), 0, -1):
            key = tuple(w for w, _ in folded[i : i + size])
            if key in ALIASES:
                plural = any(p for _, p in folded[i : i + size])
                out.extend((w, plural) for w in ALIASES[key])
                i += size
                break
        else:
            out.append(folded[i])
            i += 1
    return out, corrections


def canonical_words(name: str) -> tuple[str, ...]:
    """A class name as canonical words: ``"Kidney_Left"`` -> ``("kidney", "left")``."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return tuple(w for w, _ in normalise_words(tokenize(spaced))[0])


def _synonym_words() -> frozenset[str]:
    words: set[str] = set()
    for canonical, aliases in SYNONYMS.items():
        words.update(canonical.split())
        for alias in aliases:
            words.update(tokenize(alias))
    return frozenset(words)


VOCABULARY = _synonym_words()
"""Every canonical word and alias word of the synonym table."""


MIN_FUZZY_LENGTH = 4
"""Shorter words are never spelling-corrected: "gm" must not become "wm"."""
FUZZY_CUTOFF = 80.0
"""Smallest RapidFuzz ratio (0-100) for a correction: one typo in a 5-letter word scores 89."""


def correct(word: str, vocabulary: Iterable[str]) -> str | None:
    """The known word ``word`` is most likely a misspelling of, or ``None``.

    Uses :func:`rapidfuzz.fuzz.ratio` (normalised Levenshtein similarity, 0-100) with
    :data:`FUZZY_CUTOFF`; words shorter than :data:`MIN_FUZZY_LENGTH` are not corrected.
    """
    if len(word) < MIN_FUZZY_LENGTH:
        return None
    choices = [w for w in vocabulary if len(w) >= MIN_FUZZY_LENGTH - 1]
    found = process.extractOne(word, choices, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
    return None if found is None else str(found[0])


def suggestions(word: str, choices: Iterable[str], limit: int = 3) -> list[str]:
    """Up to ``limit`` choices most similar to ``word`` (for "did you mean" messages)."""
    pool = [c for c in choices if len(c) >= MIN_FUZZY_LENGTH - 1]
    found = process.extract(word, pool, scorer=fuzz.WRatio, limit=limit, score_cutoff=60)
    return [str(choice) for choice, _, _ in found]
