"""Simulated users: where a user would click, box or scribble given the truth.

Used both to train the learned engine and to evaluate any engine. Masks are bool arrays of
shape (Z, Y, X) or (Y, X); coordinates are voxel indices in array order. Randomness comes in
as ``rng`` and only breaks ties or jitters, so a fixed seed gives a fixed user.
"""

from __future__ import annotations

import cc3d
import edt
import numpy as np
from scipy import ndimage
from skimage.draw import line_nd
from skimage.morphology import skeletonize

from medseg._typing import BoolArray
from medseg.errors import GeometryError
from medseg.interactive.prompts import Box, Click, Scribble


def _connectivity(ndim: int) -> int:
    return 26 if ndim == 3 else 8


def largest_error_component(pred: BoolArray, ref: BoolArray) -> BoolArray:
    """The largest connected component (26- or 8-connected) of ``pred != ref``."""
    error = np.asarray(pred, bool) != np.asarray(ref, bool)
    if not error.any():
        return error
    return cc3d.largest_k(error, k=1, connectivity=_connectivity(error.ndim)) > 0


def _argmax_random(values: np.ndarray, rng: np.random.Generator) -> tuple[int, ...]:
    flat = np.flatnonzero(values == values.max())
    return tuple(int(i) for i in np.unravel_index(rng.choice(flat), values.shape))


def _padded_distance(region: BoolArray, pad_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the region's outside on a bounding-box crop padded by ``pad_fraction``.

    Returns the distance map of the crop and the crop's offset in the full array; the padding
    is zeros, so the image border counts as outside.
    """
    coords = np.argwhere(region)
    lo, hi = coords.min(0), coords.max(0) + 1
    pad = np.ceil((hi - lo) * pad_fraction).astype(int) + 1
    crop = region[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    crop = np.pad(crop, [(p, p) for p in pad])
    return edt.edt(np.ascontiguousarray(crop), black_border=True), lo - pad


def error_click(
    pred: BoolArray, ref: BoolArray, rng: np.random.Generator, *, pad_fraction: float = 0.25
) -> Click | None:
    """Next click by the CVPR 2025 rule: the largest error component's distance maximum.

    The click is positive where ``ref`` is object there, negative otherwise; None if the
    prediction is perfect. Ties are broken with ``rng``.
    """
    component = largest_error_component(pred, ref)
    if not component.any():
        return None
    dist, offset = _padded_distance(component, pad_fraction)
    point = tuple(int(p + o) for p, o in zip(_argmax_random(dist, rng), offset, strict=True))
    return Click(point, bool(ref[point]))


def ritm_click(pred: BoolArray, ref: BoolArray, rng: np.random.Generator) -> Click | None:
    """Next click by the RITM rule (NoC): centre of the larger of false negatives / positives.

    "Larger" is by the maximal distance to the region's border (borders of the image count).
    """
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    fn, fp = ref & ~pred, pred & ~ref
    if not (fn.any() or fp.any()):
        return None
    dist_fn = edt.edt(np.ascontiguousarray(fn), black_border=True)
    dist_fp = edt.edt(np.ascontiguousarray(fp), black_border=True)
    positive = bool(dist_fn.max() > dist_fp.max())
    return Click(_argmax_random(dist_fn if positive else dist_fp, rng), positive)


def simulate_box(
    ref: BoolArray, rng: np.random.Generator, *, max_jitter: int = 5, axis: int = 0
) -> Box:
    """A box around ``ref`` by the CVPR 2025 rule.

    2D: the tight box, each side pushed out by a random 0-``max_jitter`` px scaled by
    ``dim / 256``. 3D: that 2D box on the median object slice along ``axis``, spanning the
    object's extent along ``axis``. Clipped to the image.
    """
    ref = np.asarray(ref, bool)
    if not ref.any():
        raise GeometryError("cannot draw a box around an empty mask")
    coords = np.argwhere(ref)
    lo, hi = coords.min(0), coords.max(0)
    if ref.ndim == 3:
        present = np.unique(coords[:, axis])
        median = int(present[len(present) // 2])  # a slice that holds the object
        plane = coords[coords[:, axis] == median]
        lo_p, hi_p = plane.min(0), plane.max(0)
        in_plane = [a for a in range(3) if a != axis]
        lo[in_plane], hi[in_plane] = lo_p[in_plane], hi_p[in_plane]
        jitter_axes = in_plane
    else:
        jitter_axes = [0, 1]
    shape = np.asarray(ref.shape)
    for a in jitter_axes:
        scale = shape[a] / 256
        lo[a] -= int(np.rint(rng.integers(0, max_jitter + 1) * scale))
        hi[a] += int(np.rint(rng.integers(0, max_jitter + 1) * scale))
    return Box(tuple(np.clip(lo, 0, shape - 1)), tuple(np.clip(hi, 0, shape - 1)))


def _slice_of(region: BoolArray, axis: int, point: tuple[int, ...] | None) -> int:
    """Slice index along ``axis``: through ``point`` or the region's largest cross-section."""
    if point is not None:
        return int(point[axis])
    other = tuple(a for a in range(region.ndim) if a != axis)
    return int(np.argmax(region.sum(axis=other)))


def simulate_scribble(
    region: BoolArray,
    rng: np.random.Generator,
    *,
    kind: str = "skeleton",
    positive: bool = True,
    axis: int = 0,
    through: tuple[int, ...] | None = None,
) -> Scribble | None:
    """A stroke inside ``region`` as a user would draw it on one slice (3D) or the image (2D).

    Parameters
    ----------
    region : ndarray of bool
        Where the stroke must lie (the object, or an error component).
    kind : {"skeleton", "line", "contour"}
        Centre line, a random chord clipped to the region, or the region's inner border.
    axis, through
        For 3D regions, the slice axis and a voxel whose slice to draw on (default: the
        slice of largest cross-section).

    Returns
    -------
    Scribble or None
        None when the region is empty.
    """
    region = np.asarray(region, bool)
    if not region.any():
        return None
    if region.ndim == 3:
        index = _slice_of(region, axis, through)
        plane = np.take(region, index, axis=axis)
    else:
        plane = region
    if kind == "skeleton":
        stroke = skeletonize(plane)
    elif kind == "contour":
        stroke = plane & ~ndimage.binary_erosion(plane)
    elif kind == "line":
        pts = np.argwhere(plane)
        a, b = pts[rng.choice(len(pts), size=2)]
        stroke = np.zeros_like(plane)
        stroke[line_nd(a, b, endpoint=True)] = True
        stroke &= plane
    else:
        raise GeometryError(f"unknown scribble kind {kind!r}; use skeleton, line or contour")
    if not stroke.any():
        stroke = plane
    voxels = np.argwhere(stroke)
    if region.ndim == 3:
        voxels = np.insert(voxels, axis, index, axis=1)
    return Scribble(voxels, positive)


def error_scribble(
    pred: BoolArray, ref: BoolArray, rng: np.random.Generator, *, axis: int = 0
) -> Scribble | None:
    """A correction stroke on the largest error component.

    The stroke is the centre line of the component's part of one sign (missed object for a
    positive stroke, spurious object for a negative one) on the slice along ``axis`` through
    the component's distance maximum (the :func:`error_click` point).
    """
    click = error_click(pred, ref, rng)
    if click is None:
        return None
    component = largest_error_component(pred, ref)
    component &= np.asarray(ref, bool) if click.positive else ~np.asarray(ref, bool)
    return simulate_scribble(
        component, rng, kind="skeleton", positive=click.positive, axis=axis, through=click.point
    )
