"""The cascade's planning rule: a ``3d_lowres`` stage when the image is far larger than the patch.

nnU-Net (Isensee et al. 2021) plans a low-resolution configuration when the full-resolution
patch covers less than a quarter of the median resampled image: the target spacing is raised in
steps of 3 % (first only the axes more than 2x finer than the coarsest, until they catch up)
and the patch re-planned at each step, until the patch covers at least a quarter of the median
image at that spacing. The stage is dropped when the median image did not shrink at least 2x.
``3d_cascade_fullres`` is the full-resolution configuration with the low-resolution
segmentation as extra input channels (docs/methods.md, "Cascade").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from medseg.plan.plan import Configuration

LOWRES_THRESHOLD = 0.25
"""A low-resolution stage is planned when patch voxels / median image voxels is below this."""
SPACING_STEP = 1.03
"""Factor by which the low-resolution spacing grows per planning step (nnU-Net's value)."""
MIN_SHRINK = 2.0
"""The low-resolution median image must have at least this many times fewer voxels."""
FORCED_FACTOR = 2.0
"""Spacing factor of a low-resolution stage asked for where the rule would not plan one."""
MAX_STEPS = 400
LOWRES = "3d_lowres"
CASCADE = "3d_cascade_fullres"


def plan_cascade(
    full: Configuration,
    median_shape: Sequence[float],
    plan_at: Callable[[tuple[float, ...]], Configuration],
    *,
    force: bool = False,
    spacing: Sequence[float] | None = None,
) -> tuple[dict[str, Configuration], str]:
    """The ``3d_lowres`` and ``3d_cascade_fullres`` configurations, or none.

    Parameters
    ----------
    full : Configuration
        The planned ``3d`` configuration.
    median_shape : sequence of float
        Median image shape at ``full.spacing`` (voxels, network axis order).
    plan_at : callable
        Plans a ``3d_lowres`` configuration at the given spacing (mm, network axis order).
    force : bool
        Plan the cascade even where the rule would not (at :data:`FORCED_FACTOR` x the spacing).
    spacing : sequence of float, optional
        The low-resolution spacing, set by an override (implies ``force``).

    Returns
    -------
    configurations : dict
        ``{"3d_lowres": ..., "3d_cascade_fullres": ...}``, or ``{}``.
    reason : str
        Why the cascade was or was not planned (for the ``3d`` configuration's reasons).
    """
    median_voxels = math.prod(median_shape)
    covered = math.prod(full.patch_size) / median_voxels
    share = f"the patch covers {covered:.1%} of the median resampled image"
    if spacing is not None:
        lowres = plan_at(tuple(float(s) for s in spacing))
        why = f"spacing {_fmt(lowres.spacing)} mm set by override"
    elif covered >= LOWRES_THRESHOLD and not force:
        return {}, (
            f"no cascade: {share} (nnU-Net plans a low-resolution stage below "
            f"{LOWRES_THRESHOLD:.0%})"
        )
    else:
        found = None if covered >= LOWRES_THRESHOLD else _search(full, median_shape, plan_at)
        if found is None and not force:
            return {}, (
                f"no cascade: {share}, but a coarser spacing that shrinks the median image at "
                f"least {MIN_SHRINK:g}x leaves no room for a low-resolution stage"
            )
        if found is None:
            lowres = plan_at(tuple(FORCED_FACTOR * s for s in full.spacing))
            why = (
                f"asked for although the rule plans none ({share}); spacing "
                f"{FORCED_FACTOR:g}x the full-resolution one"
            )
        else:
            lowres = found
            why = (
                f"{share} (< {LOWRES_THRESHOLD:.0%}), so the spacing was raised in steps of "
                f"{SPACING_STEP - 1:.0%} (axes more than 2x finer than the coarsest first) until "
                f"the patch covers at least {LOWRES_THRESHOLD:.0%} of the median image (nnU-Net's "
                "rule)"
            )
    low_voxels = median_voxels * math.prod(np.divide(full.spacing, lowres.spacing))
    lowres_reason = (
        f"3d_lowres: {why}; at {_fmt(lowres.spacing)} mm the median image has "
        f"{low_voxels:,.0f} voxels ({median_voxels / max(low_voxels, 1):.1f}x fewer) and "
        f"the patch {list(lowres.patch_size)} covers "
        f"{math.prod(lowres.patch_size) / max(low_voxels, 1):.0%} of it; its segmentation "
        "feeds 3d_cascade_fullres"
    )
    cascade_reason = (
        "3d_cascade_fullres: the 3d configuration with one extra input channel per foreground "
        "label, the one-hot segmentation of 3d_lowres resampled to this grid (out-of-fold "
        "predictions in training); train 3d_lowres first, then this with --previous-stage"
    )
    configurations = {
        LOWRES: replace(lowres, name=LOWRES, reasons=(*lowres.reasons, lowres_reason)),
        CASCADE: replace(
            full, name=CASCADE, previous_stage=LOWRES, reasons=(*full.reasons, cascade_reason)
        ),
    }
    return configurations, (
        f"cascade planned ({why}): 3d_lowres and 3d_cascade_fullres; the default stays 3d "
        "(a cascade trains two networks)"
    )


def _search(
    full: Configuration,
    median_shape: Sequence[float],
    plan_at: Callable[[tuple[float, ...]], Configuration],
) -> Configuration | None:
    """nnU-Net's search: coarsen the spacing until the patch covers a quarter of the image."""
    base = np.asarray(full.spacing, dtype=float)
    spacing = base.copy()
    patch_voxels = float(math.prod(full.patch_size))
    median_voxels = float(math.prod(median_shape))
    lowres = None
    steps = 0
    while patch_voxels / median_voxels < LOWRES_THRESHOLD and steps < MAX_STEPS:
        finer = spacing.max() / spacing > 2
        spacing = (
            np.where(finer, spacing * SPACING_STEP, spacing)
            if finer.any()
            else (spacing * SPACING_STEP)
        )
        median_voxels = float(np.prod(base / spacing * np.asarray(median_shape)))
        lowres = plan_at(tuple(float(s) for s in spacing))
        patch_voxels = float(math.prod(lowres.patch_size))
        steps += 1
    if lowres is None or math.prod(median_shape) / median_voxels < MIN_SHRINK:
        return None
    return lowres


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
