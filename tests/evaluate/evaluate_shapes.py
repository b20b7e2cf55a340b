"""Analytic masks and tiny label files shared by the evaluate tests (imported by name)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.io import Image, write_image

SPACING = (3.0, 0.8, 0.8)
OBLIQUE = np.array(
    [[1.0, 0.0, 0.0], [0.0, np.cos(0.3), -np.sin(0.3)], [0.0, np.sin(0.3), np.cos(0.3)]]
)


def sphere(shape, centre, radius_mm, spacing):
    """Bool ball of ``radius_mm`` around ``centre`` (voxel index units, may be fractional)."""
    grids = np.indices(shape, dtype=float)
    dist2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing, strict=True))
    return dist2 <= radius_mm**2


def blobs(rng, shape=(16, 20, 18), threshold=0.2):
    """Random smooth blobs: a realistic mask for comparisons against peers."""
    from scipy import ndimage

    return ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) > threshold


def write_label(array: np.ndarray, path: Path, spacing=SPACING, direction=OBLIQUE, origin=None):
    image = Image.from_array(
        array[None].astype(np.uint8), spacing=spacing, origin=origin, direction=direction
    )
    write_image(image, path)


def make_case_labels(rng, shape=(12, 24, 24)):
    """Label map with two classes: 1 = a ball, 2 = a box beside it, and a small lesion of 1."""
    labels = np.zeros(shape, np.uint8)
    labels[sphere(shape, (6, 8, 8), 6.0, SPACING)] = 1
    z0 = int(rng.integers(3, 5))
    labels[z0 : z0 + 6, 12:20, 12:20] = 2
    labels[2:4, 18:21, 3:6] = 1
    return labels


def corrupt(labels: np.ndarray, rng) -> np.ndarray:
    """A plausible wrong prediction: shifted, with label 2 eroded and a spurious blob."""
    from scipy import ndimage

    out = np.roll(labels, int(rng.integers(-1, 2)), axis=2).copy()
    two = ndimage.binary_erosion(out == 2)
    out[(out == 2) & ~two] = 0
    out[9:11, 2:5, 18:22] = 1
    return out
