"""Analytic shapes and geometry helpers shared by the report tests (imported by name)."""

from __future__ import annotations

import numpy as np

from medseg.io import Image


def rotation(z_deg: float, y_deg: float, x_deg: float) -> np.ndarray:
    """A proper rotation matrix (3, 3) from three angles in degrees about the z, y, x axes."""

    def about(axis: int, deg: float) -> np.ndarray:
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        i, j = [a for a in range(3) if a != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m

    return about(0, z_deg) @ about(1, y_deg) @ about(2, x_deg)


def physical_grid(shape, spacing, origin, direction) -> np.ndarray:
    """Physical (z, y, x) position of every voxel centre, shape (*shape, 3)."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return idx * np.asarray(spacing) @ np.asarray(direction).T + np.asarray(origin)


def ellipsoid_mask(points, centre, axes_mm, frame) -> np.ndarray:
    """Voxels inside an ellipsoid with semi-axes ``axes_mm`` along the columns of ``frame``."""
    local = (points - np.asarray(centre)) @ np.asarray(frame)
    return np.sum((local / np.asarray(axes_mm)) ** 2, axis=-1) <= 1.0


def make_image(array, spacing, origin, direction, meta=None) -> Image:
    """A one-channel :class:`Image` of a (Z, Y, X) array with the given geometry."""
    return Image(
        array=array[None], spacing=spacing, origin=origin, direction=direction, meta=meta or {}
    )
