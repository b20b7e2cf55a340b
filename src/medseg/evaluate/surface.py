"""Boundary distances in mm: Hausdorff, HD95, average surface distance, surface Dice.

Two boundary families (see ``docs/evaluate.md``, Definitions):

``"surfel"`` (default)
    DeepMind surface-distance: boundary points are voxel corners whose 2×2×2 block is mixed,
    each weighted by its marching-cubes area in mm² (contour length in 2D). Percentiles, means
    and NSD are area-weighted. Same numbers as ``surface_distance.compute_surface_distances``.
``"erosion"``
    MONAI / MetricsReloaded: boundary voxels are ``mask & ~erode(mask)`` with the face-connected
    cross, each counting 1; distances between voxel centres. Same numbers as MONAI's
    ``HausdorffDistanceMetric`` and ``SurfaceDiceMetric`` (``use_subvoxels=False``).

In both, the outside of the array is background, and distances are exact Euclidean distances in
mm with anisotropic spacing (``edt`` on the union bounding box, or a KD-tree over the boundary
points when they are few relative to that box).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from medseg._typing import BoolArray, SpacingMM
from medseg.errors import ConfigError
from medseg.evaluate._checks import check_pair, union_bbox
from medseg.evaluate.boundary import eroded_boundary, nearest_distances, surfel_boundary

BoundaryMode = Literal["surfel", "erosion"]
HDVariant = Literal["directed_max", "pooled"]
PercentileMethod = Literal["weighted", "linear"]
ASSDVariant = Literal["pooled", "masd"]

_FloatArray = npt.NDArray[np.float64]
_TIE_RTOL = 1e-6
"""Relative slack in ``d <= tol``: the EDT works in float32, so exact ties must not flip."""


@dataclass(frozen=True)
class SurfaceDistances:
    """Distances from each boundary element of one mask to the boundary of the other.

    Attributes
    ----------
    ref_to_pred, pred_to_ref : ndarray of float64, shape (N_ref,), (N_pred,)
        Distance in mm from each boundary element of the reference (prediction) to the nearest
        boundary element of the other mask; ``inf`` when the other mask is empty.
    ref_weights, pred_weights : ndarray of float64, same shapes
        Surface measure of each element: mm² (3D) or mm (2D) for ``"surfel"``, 1 for
        ``"erosion"``.
    boundary : {"surfel", "erosion"}
        Boundary family that produced the elements.
    """

    ref_to_pred: _FloatArray
    pred_to_ref: _FloatArray
    ref_weights: _FloatArray
    pred_weights: _FloatArray
    boundary: BoundaryMode

    @property
    def status(self) -> Literal["ok", "both_empty", "ref_empty", "pred_empty"]:
        """Which masks had a boundary: the empty-mask rule of every metric below keys on it."""
        if self.ref_to_pred.size == 0 and self.pred_to_ref.size == 0:
            return "both_empty"
        if self.ref_to_pred.size == 0:
            return "ref_empty"
        if self.pred_to_ref.size == 0:
            return "pred_empty"
        return "ok"


def compute_surface_distances(
    pred: BoolArray,
    ref: BoolArray,
    spacing: SpacingMM,
    *,
    boundary: BoundaryMode = "surfel",
) -> SurfaceDistances:
    """Boundary elements of both masks and their distances to the other boundary.

    Parameters
    ----------
    pred, ref : ndarray of bool, shape (Z, Y, X) or (Y, X)
        Masks on the same voxel grid.
    spacing : tuple of float
        Voxel size in mm in array order (z, y, x). Required: there is no voxel-unit default.
    boundary : {"surfel", "erosion"}
        Boundary family (module docstring).

    Returns
    -------
    SurfaceDistances
        Element lists are empty for an empty mask; distances to an empty mask are ``inf``.
    """
    pred, ref, spacing = check_pair(pred, ref, spacing)
    if boundary not in ("surfel", "erosion"):
        raise ConfigError(f"boundary must be 'surfel' or 'erosion', got {boundary!r}")
    empty = np.empty(0)
    box = union_bbox(pred | ref)
    if box is None:
        return SurfaceDistances(empty, empty, empty, empty, boundary)
    if boundary == "surfel":
        pred_b, ref_b = surfel_boundary(pred[box], spacing), surfel_boundary(ref[box], spacing)
    else:
        pred_b, ref_b = eroded_boundary(pred[box]), eroded_boundary(ref[box])
    return SurfaceDistances(
        ref_to_pred=nearest_distances(ref_b, pred_b, spacing),
        pred_to_ref=nearest_distances(pred_b, ref_b, spacing),
        ref_weights=ref_b.weights,
        pred_weights=pred_b.weights,
        boundary=boundary,
    )


def hausdorff(sd: SurfaceDistances) -> float:
    """Hausdorff distance in mm: largest distance in either direction.

    ``nan`` if both masks are empty, ``inf`` if exactly one is.
    """
    if sd.status == "both_empty":
        return float("nan")
    return float(max(_max(sd.ref_to_pred), _max(sd.pred_to_ref)))


def percentile_hausdorff(
    sd: SurfaceDistances,
    percentile: float = 95.0,
    *,
    variant: HDVariant = "directed_max",
    method: PercentileMethod | None = None,
) -> float:
    """Percentile Hausdorff distance (HD95 by default) in mm.

    Parameters
    ----------
    sd : SurfaceDistances
        Output of :func:`compute_surface_distances`.
    percentile : float
        In [0, 100].
    variant : {"directed_max", "pooled"}
        ``"directed_max"``: the larger of the two directed percentiles (DeepMind, MONAI,
        MetricsReloaded). ``"pooled"``: one percentile of both lists together (MedPy,
        panoptica); more lenient.
    method : {"weighted", "linear"}, optional
        ``"weighted"``: the first sorted distance whose cumulative weight reaches the
        percentile, no interpolation (DeepMind). ``"linear"``: unweighted, linear interpolation
        (``np.percentile``, ``torch.quantile``; MONAI). Default: weighted for surfels, linear
        for erosion.

    Returns
    -------
    float
        ``nan`` if both masks are empty, ``inf`` if exactly one is.
    """
    if not 0 <= percentile <= 100:
        raise ConfigError(f"percentile must be in [0, 100], got {percentile}")
    if variant not in ("directed_max", "pooled"):
        raise ConfigError(f"variant must be 'directed_max' or 'pooled', got {variant!r}")
    method = method or ("weighted" if sd.boundary == "surfel" else "linear")
    if method not in ("weighted", "linear"):
        raise ConfigError(f"method must be 'weighted' or 'linear', got {method!r}")
    if sd.status == "both_empty":
        return float("nan")
    if sd.status != "ok":
        return float("inf")
    if variant == "pooled":
        pairs = [
            (
                np.concatenate([sd.ref_to_pred, sd.pred_to_ref]),
                np.concatenate([sd.ref_weights, sd.pred_weights]),
            )
        ]
    else:
        pairs = [(sd.ref_to_pred, sd.ref_weights), (sd.pred_to_ref, sd.pred_weights)]
    values = [_percentile(d, w, percentile, method) for d, w in pairs]
    return float(max(values))


def _percentile(d: _FloatArray, w: _FloatArray, percentile: float, method: str) -> float:
    if method == "linear":
        return float(np.percentile(d, percentile))
    order = np.argsort(d, kind="stable")
    cumulative = np.cumsum(w[order])
    idx = int(np.searchsorted(cumulative / cumulative[-1], percentile / 100.0))
    return float(d[order[min(idx, d.size - 1)]])


def directed_average_distances(sd: SurfaceDistances) -> tuple[float, float]:
    """Weighted mean distance in mm (reference→prediction, prediction→reference).

    A direction is ``nan`` when its own mask is empty and ``inf`` when only the other is.
    """
    return _weighted_mean(sd.ref_to_pred, sd.ref_weights), _weighted_mean(
        sd.pred_to_ref, sd.pred_weights
    )


def average_symmetric_surface_distance(
    sd: SurfaceDistances, *, variant: ASSDVariant = "pooled"
) -> float:
    """Average symmetric surface distance in mm.

    ``"pooled"`` (default): weighted mean over both boundaries together, (Σ w d over ∂R and ∂P)
    / (Σ w), as MONAI ``SurfaceDistanceMetric(symmetric=True)`` and MetricsReloaded ``assd``.
    ``"masd"``: the mean of the two directed means (MetricsReloaded ``masd``, MedPy ``assd``).
    ``nan`` if both masks are empty, ``inf`` if exactly one is.
    """
    if variant not in ("pooled", "masd"):
        raise ConfigError(f"ASSD variant must be 'pooled' or 'masd', got {variant!r}")
    if sd.status == "both_empty":
        return float("nan")
    if sd.status != "ok":
        return float("inf")
    if variant == "masd":
        return float(np.mean(directed_average_distances(sd)))
    total = np.dot(sd.ref_to_pred, sd.ref_weights) + np.dot(sd.pred_to_ref, sd.pred_weights)
    return float(total / (sd.ref_weights.sum() + sd.pred_weights.sum()))


def surface_dice(sd: SurfaceDistances, tol_mm: float) -> float:
    """Normalised surface Dice at tolerance ``tol_mm``: weighted share of elements with d ≤ τ.

    NSD = (Σ w over ∂R with d ≤ τ + Σ w over ∂P with d ≤ τ) / (Σ w over ∂R and ∂P), as in
    DeepMind (surfel weights) and MONAI (unit weights). ``nan`` if both masks are empty, 0 if
    exactly one is.
    """
    if not np.isfinite(tol_mm) or tol_mm < 0:
        raise ConfigError(f"NSD tolerance must be a finite number of mm >= 0, got {tol_mm}")
    if sd.status == "both_empty":
        return float("nan")
    limit = tol_mm * (1 + _TIE_RTOL)
    # the same summation for both sums (not a BLAS dot, whose rounding depends on the CPU), so
    # that NSD is exactly 1 when every element is within the tolerance
    close = (
        sd.ref_weights[sd.ref_to_pred <= limit].sum()
        + sd.pred_weights[sd.pred_to_ref <= limit].sum()
    )
    return float(close / (sd.ref_weights.sum() + sd.pred_weights.sum()))


def hd95(
    pred: BoolArray, ref: BoolArray, spacing: SpacingMM, *, boundary: BoundaryMode = "surfel"
) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (max of the two directed HD95).

    Parameters
    ----------
    pred, ref : ndarray of bool, shape (Z, Y, X) or (Y, X)
        Masks on the same voxel grid.
    spacing : tuple of float
        Voxel size in mm along (z, y, x). Required; there is no voxel-unit default.
    boundary : {"surfel", "erosion"}
        ``"surfel"``: DeepMind, area-weighted percentile. ``"erosion"``: MONAI, linear
        percentile over boundary voxels.

    Returns
    -------
    float
        Distance in mm; ``nan`` if both masks are empty, ``inf`` if exactly one is.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((1, 1, 8), bool); b = a.copy(); a[0, 0, 1] = b[0, 0, 3] = True
    >>> hd95(a, b, (3.0, 2.0, 1.0))
    2.0
    """
    sd = compute_surface_distances(pred, ref, spacing, boundary=boundary)
    return percentile_hausdorff(sd, 95.0)


def normalized_surface_dice(
    pred: BoolArray,
    ref: BoolArray,
    spacing: SpacingMM,
    tol_mm: float,
    *,
    boundary: BoundaryMode = "surfel",
) -> float:
    """Normalised surface Dice (Nikolov et al. 2021) at a tolerance in mm.

    Parameters
    ----------
    pred, ref : ndarray of bool, shape (Z, Y, X) or (Y, X)
        Masks on the same voxel grid.
    spacing : tuple of float
        Voxel size in mm along (z, y, x).
    tol_mm : float
        Tolerance in mm; an element counts when its distance is ≤ ``tol_mm``.
    boundary : {"surfel", "erosion"}
        Area-weighted surfels (DeepMind, default) or boundary-voxel counts (MONAI).

    Returns
    -------
    float
        In [0, 1]; ``nan`` if both masks are empty, 0 if exactly one is.
    """
    sd = compute_surface_distances(pred, ref, spacing, boundary=boundary)
    return surface_dice(sd, tol_mm)


def _max(d: _FloatArray) -> float:
    return float(d.max()) if d.size else 0.0


def _weighted_mean(d: _FloatArray, w: _FloatArray) -> float:
    if d.size == 0:
        return float("nan")
    if np.isinf(d).any():
        return float("inf")
    return float(np.dot(d, w) / w.sum())
