"""Input checks shared by the metric functions: masks, spacing, bounding boxes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from medseg._typing import BoolArray, SpacingMM
from medseg.errors import GeometryError


def check_mask(name: str, mask: npt.ArrayLike) -> BoolArray:
    """Return ``mask`` as a 2D or 3D bool array, or raise naming the parameter."""
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise GeometryError(
            f"{name} must be a bool mask, got dtype {array.dtype}; compare a label map "
            f"with its value first (e.g. labels == 1)"
        )
    if array.ndim not in (2, 3):
        raise GeometryError(f"{name} must be 2D (Y, X) or 3D (Z, Y, X), got shape {array.shape}")
    return array


def check_spacing(spacing: SpacingMM, ndim: int) -> tuple[float, ...]:
    """Return ``spacing`` as a tuple of ``ndim`` positive finite floats (mm, array order).

    Raises
    ------
    GeometryError
        ``spacing`` is ``None``, a scalar, not numeric, of another length than ``ndim``, or
        holds a zero, negative or non-finite value.
    """
    example = ", ".join(["1.0"] * ndim)
    problem = f"spacing must be {ndim} positive mm values in array order, e.g. ({example})"
    if spacing is None:
        raise GeometryError(f"{problem}; got None")
    try:
        values = np.asarray(spacing, dtype=float)
    except (TypeError, ValueError) as err:
        raise GeometryError(f"{problem}; got {spacing!r}") from err
    if values.ndim != 1 or values.size != ndim:
        raise GeometryError(f"{problem}; got {spacing!r}")
    if not np.all(np.isfinite(values) & (values > 0)):
        raise GeometryError(f"{problem}; got {tuple(values.tolist())}")
    return tuple(float(v) for v in values)


def check_pair(
    pred: npt.ArrayLike, ref: npt.ArrayLike, spacing: SpacingMM
) -> tuple[BoolArray, BoolArray, tuple[float, ...]]:
    """Validate a prediction/reference mask pair on the same grid and its spacing."""
    pred_arr, ref_arr = check_mask("pred", pred), check_mask("ref", ref)
    if pred_arr.shape != ref_arr.shape:
        raise GeometryError(f"pred shape {pred_arr.shape} differs from ref shape {ref_arr.shape}")
    return pred_arr, ref_arr, check_spacing(spacing, ref_arr.ndim)


def union_bbox(mask: BoolArray, margin: int = 0) -> tuple[slice, ...] | None:
    """Bounding box of the ``True`` voxels as slices, grown by ``margin`` and clipped.

    ``None`` for an empty mask.
    """
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if hits.size == 0:
            return None
        lo = max(int(hits[0]) - margin, 0)
        hi = min(int(hits[-1]) + 1 + margin, mask.shape[axis])
        box.append(slice(lo, hi))
    return tuple(box)
