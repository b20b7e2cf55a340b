"""A synthetic abdomen with seven lesions, stored in several orientations (same patient space).

Objects are boxes of voxel indices on a canonical grid stored in LPS order (array x runs to the
patient's left, y to posterior, z to superior). Each storage variant flips or permutes the array
and adjusts direction and origin so that every voxel keeps its physical position; the expected
voxels of a phrase are the same objects, transformed the same way. Answers in the phrase tables
are written by hand from the layout below, not computed by medseg.

Canonical grid (z, y, x) = (24, 36, 48), spacing (3, 2, 2) mm: one voxel is 0.012 ml. The
midline is x index 23.5, the image centre (11.5, 17.5, 23.5).

========  =====  ==========================  ======  ======================================
object    label  box (z, y, x) index ranges  volume  where
========  =====  ==========================  ======  ======================================
liver     1      4:20, 4:24, 4:22                    right, anterior
spleen    2      8:18, 12:24, 30:42                  left
kidney_l  3      4:12, 26:34, 30:38                  left, posterior, inferior
kidney_r  4      4:12, 26:34, 8:16                   right, posterior, inferior
vertebra  7      0:24, 30:36, 23:25                  both sides of the midline (one column each)
A tumor   5      6:10, 6:10, 6:10            0.768   in liver; right, anterior, inferior
B tumor   5      12:18, 14:20, 12:18         2.592   in liver; right, anterior, superior
C tumor   5      10:13, 15:18, 34:37         0.324   in spleen; left, anterior, inferior
D metas.  6      14:16, 6:8, 16:18           0.096   in liver; right, anterior, superior
E metas.  6      6:9, 28:31, 32:36           0.432   in kidney_left; left, posterior, inferior
F tumor   5      19:23, 2:6, 38:44           1.152   outside organs; left, anterior, superior
G metas.  6      6:8, 29:31, 17:20           0.144   outside organs, 4 mm from kidney_right
========  =====  ==========================  ======  ======================================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SHAPE = (24, 36, 48)
SPACING = (3.0, 2.0, 2.0)
NAMES = {
    1: "liver",
    2: "spleen",
    3: "kidney_left",
    4: "kidney_right",
    5: "tumor",
    6: "metastasis",
    7: "vertebra",
}
BOXES: dict[str, tuple[int, tuple[tuple[int, int], ...]]] = {
    "liver": (1, ((4, 20), (4, 24), (4, 22))),
    "spleen": (2, ((8, 18), (12, 24), (30, 42))),
    "kidney_left": (3, ((4, 12), (26, 34), (30, 38))),
    "kidney_right": (4, ((4, 12), (26, 34), (8, 16))),
    "vertebra": (7, ((0, 24), (30, 36), (23, 25))),
    "A": (5, ((6, 10), (6, 10), (6, 10))),
    "B": (5, ((12, 18), (14, 20), (12, 18))),
    "C": (5, ((10, 13), (15, 18), (34, 37))),
    "D": (6, ((14, 16), (6, 8), (16, 18))),
    "E": (6, ((6, 9), (28, 31), (32, 36))),
    "F": (5, ((19, 23), (2, 6), (38, 44))),
    "G": (6, ((6, 8), (29, 31), (17, 20))),
}
LESIONS = ("A", "B", "C", "D", "E", "F", "G")


def canonical_labels() -> np.ndarray:
    """The (Z, Y, X) label map on the canonical grid (lesions painted over organs)."""
    labels = np.zeros(SHAPE, dtype=np.uint8)
    for value, box in BOXES.values():
        labels[tuple(slice(a, b) for a, b in box)] = value
    return labels


def canonical_object(name: str) -> np.ndarray:
    """Voxels of one object on the canonical grid; ``vertebra@left`` is its left half."""
    labels = canonical_labels()
    base, _, half = name.partition("@")
    value, box = BOXES[base]
    mask = np.zeros(SHAPE, dtype=bool)
    mask[tuple(slice(a, b) for a, b in box)] = True
    mask &= labels == value
    if half:
        x = np.arange(SHAPE[2])[None, None, :]
        mask &= (x > 23.5) if half == "left" else (x < 23.5)
    return mask


Variant = tuple[
    Callable[[np.ndarray], np.ndarray], np.ndarray, tuple[float, ...], tuple[float, ...]
]


def _variant(flip: tuple[bool, bool, bool], perm: tuple[int, int, int]) -> Variant:
    """Storage that flips canonical axes then permutes them; physical positions unchanged."""
    origin = np.zeros(3)
    direction = np.eye(3)
    for axis, flipped in enumerate(flip):
        if flipped:
            origin[axis] += (SHAPE[axis] - 1) * SPACING[axis]
            direction[:, axis] *= -1
    direction = direction[:, perm]
    spacing = tuple(SPACING[p] for p in perm)

    def store(arr: np.ndarray) -> np.ndarray:
        flipped = arr[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]
        return np.ascontiguousarray(flipped.transpose(perm))

    return store, direction, spacing, tuple(origin + 7.5)


VARIANTS = {
    "lps": _variant((False, False, False), (0, 1, 2)),
    "x_flipped": _variant((False, False, True), (0, 1, 2)),
    "ras": _variant((False, True, True), (0, 1, 2)),
    "all_flipped_yx_swapped": _variant((True, True, True), (0, 2, 1)),
}
