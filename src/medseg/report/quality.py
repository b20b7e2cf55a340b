"""Quality flags: findings a reader should check before trusting the numbers.

- ``empty_structure``: a named, non-lesion structure has no voxels;
- ``volume_out_of_range``: a structure's volume is more than ``volume_factor`` times above or
  below the mean volume of that label in the model's training set (from the dataset fingerprint:
  voxels per label over the labelled cases times their mean voxel size); lesion classes, whose
  volume varies by nature, are not checked;
- ``lesion_at_border``: a lesion touches the edge of the image, so it may be cut off and its
  size underestimated;
- ``low_confidence``: the mean of the uncertainty map inside a non-lesion structure or inside
  a lesion exceeds ``uncertainty_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from medseg.report.lesions import LesionTable
from medseg.report.measure import Structure

FlagCode = Literal[
    "empty_structure",
    "volume_out_of_range",
    "lesion_at_border",
    "low_confidence",
    "overlapping_segments",
]


@dataclass(frozen=True, kw_only=True)
class Flag:
    """A quality flag: its code, what it concerns (a structure name or ``lesion N``), a sentence."""

    code: FlagCode
    target: str
    message: str


def training_volumes_ml(fingerprint: dict[str, Any]) -> dict[int, float]:
    """Mean volume (ml) per label value over the training cases, from a fingerprint's JSON.

    Uses ``class_voxels`` (voxels per label over all labelled cases) and ``spacings`` (one
    entry per labelled case). Returns an empty dict when either is missing.
    """
    voxels = fingerprint.get("class_voxels") or {}
    spacings = fingerprint.get("spacings") or []
    if not voxels or not spacings:
        return {}
    voxel_ml = float(np.mean([np.prod(s) for s in spacings])) / 1000.0
    return {int(k): float(v) * voxel_ml / len(spacings) for k, v in voxels.items()}


def quality_flags(
    structures: list[Structure],
    lesions: LesionTable,
    *,
    training_ml: dict[int, float],
    volume_factor: float,
    uncertainty_threshold: float,
) -> list[Flag]:
    """All flags for one case, structures first, then lesions by id."""
    flags = []
    for s in structures:
        if s.voxels == 0 and not s.is_lesion_class:
            flags.append(
                Flag(code="empty_structure", target=s.name, message=f"No {s.name} was found.")
            )
        expected = training_ml.get(s.label, 0.0)
        if s.voxels and not s.is_lesion_class and expected > 0:
            ratio = s.volume_ml / expected
            if ratio > volume_factor or ratio < 1.0 / volume_factor:
                flags.append(
                    Flag(
                        code="volume_out_of_range",
                        target=s.name,
                        message=f"{s.name} measures {s.volume_ml:.1f} ml, {ratio:.2g} times the "
                        f"training-set mean of {expected:.1f} ml.",
                    )
                )
        uncertain = s.mean_uncertainty is not None and s.mean_uncertainty > uncertainty_threshold
        if uncertain and not s.is_lesion_class:  # lesion classes are flagged per lesion
            flags.append(_low_confidence(s.name, s.mean_uncertainty))
    for lesion in lesions:
        target = f"lesion {lesion.lesion_id}"
        if lesion.touches_border:
            flags.append(
                Flag(
                    code="lesion_at_border",
                    target=target,
                    message=f"Lesion {lesion.lesion_id} touches the image border and may extend "
                    "beyond it; its size may be underestimated.",
                )
            )
        if lesion.mean_uncertainty is not None and lesion.mean_uncertainty > uncertainty_threshold:
            flags.append(_low_confidence(target, lesion.mean_uncertainty))
    return flags


def _low_confidence(target: str, value: float) -> Flag:
    return Flag(
        code="low_confidence",
        target=target,
        message=f"The model is uncertain about {target} (mean uncertainty {value:.2f}).",
    )


def overlap_flag(segmentation: str) -> Flag:
    """The flag of a DICOM Segmentation whose segments overlap (the highest number was kept)."""
    return Flag(
        code="overlapping_segments",
        target=segmentation,
        message=(
            "Segments of the DICOM Segmentation overlap; each overlapping voxel was counted once, "
            "for the highest-numbered segment."
        ),
    )
