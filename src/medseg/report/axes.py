"""Diameters of a point set in mm: longest 3D diameter and RECIST long and short axes.

Points are voxel centres in physical space (mm), so anisotropic spacing and oblique direction
matrices are handled by construction. Distances run between voxel *centres*: a lesion that spans
``n`` voxels along a line measures ``(n - 1)`` voxel steps, at most one voxel shorter than its
edge-to-edge extent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError

Points = npt.NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class Diameter:
    """A measured segment: its length in mm and the indices of its two end points."""

    length_mm: float
    start: int
    end: int


def longest_diameter(points: Points) -> Diameter:
    """Largest distance between two points (the set's diameter), via its convex hull.

    Parameters
    ----------
    points : ndarray, shape (N, D)
        Coordinates in mm, D = 2 or 3.

    Returns
    -------
    Diameter
        ``start``/``end`` index into ``points``; length 0 for a single point.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return Diameter(length_mm=0.0, start=0, end=0)
    candidates = _hull_vertices(points)
    sub = points[candidates]
    squared = np.sum((sub[:, None, :] - sub[None, :, :]) ** 2, axis=-1)
    a, b = np.unravel_index(int(np.argmax(squared)), squared.shape)
    return Diameter(
        length_mm=float(np.sqrt(squared[a, b])), start=int(candidates[a]), end=int(candidates[b])
    )


def short_axis(points_2d: Points, long_axis: Diameter, bin_mm: float) -> tuple[float, Points]:
    """Longest chord perpendicular to the long axis (RECIST short axis), in the slice plane.

    The points are cut into strips ``bin_mm`` wide across the long axis; in each strip the
    extent perpendicular to the long axis is a chord length, and the longest chord is returned.

    Parameters
    ----------
    points_2d : ndarray, shape (N, 2)
        In-plane coordinates in mm.
    long_axis : Diameter
        From :func:`longest_diameter` on the same points.
    bin_mm : float
        Strip width; half the in-plane voxel diagonal keeps the error below one voxel.

    Returns
    -------
    length_mm : float
    ends : ndarray, shape (2, 2)
        The chord's end points in the same in-plane coordinates.
    """
    p = np.asarray(points_2d, dtype=np.float64)
    if long_axis.length_mm == 0.0:
        return 0.0, np.stack([p[0], p[0]])
    u = (p[long_axis.end] - p[long_axis.start]) / long_axis.length_mm
    v = np.array([-u[1], u[0]])
    along, across = p @ u, p @ v
    strips = np.floor((along - along.min()) / bin_mm).astype(np.int64)
    order = np.argsort(strips, kind="stable")
    strips, across_sorted, along_sorted = strips[order], across[order], along[order]
    starts = np.flatnonzero(np.r_[True, strips[1:] != strips[:-1]])
    lows = np.minimum.reduceat(across_sorted, starts)
    highs = np.maximum.reduceat(across_sorted, starts)
    best = int(np.argmax(highs - lows))
    stop = starts[best + 1] if best + 1 < len(starts) else len(strips)
    centre_along = float(np.mean(along_sorted[starts[best] : stop]))
    ends = np.stack([centre_along * u + lows[best] * v, centre_along * u + highs[best] * v])
    return float(highs[best] - lows[best]), ends


def _hull_vertices(points: Points) -> npt.NDArray[np.intp]:
    """Indices of the convex-hull vertices; flat sets are hulled in their own plane or line."""
    if len(points) <= points.shape[1] + 1:
        return np.arange(len(points))
    try:
        return np.asarray(ConvexHull(points).vertices)
    except QhullError:  # coplanar (3D) or collinear points: drop the empty dimension
        centred = points - points.mean(axis=0)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        rank = int(np.sum(singular > 1e-9 * max(singular[0], 1e-300)))
        projected = centred @ vt[:rank].T
        if rank <= 1:
            line = projected[:, 0] if rank else np.zeros(len(points))
            return np.unique([int(np.argmin(line)), int(np.argmax(line))])
        return _hull_vertices(projected)
