"""Compact mask updates and NIfTI bytes for the viewer.

A label update is the smallest box around the changed voxels plus the label values inside it,
run-length encoded in C order (the last axis, x, fastest: the order of a NIfTI file's voxels,
so a browser can paste it straight into its copy of the label volume). Runs are
``[value, count, value, count, ...]``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from medseg.errors import GeometryError
from medseg.io import Image, write_image


def rle_encode(values: npt.NDArray[np.integer]) -> list[int]:
    """Run-length encode ``values`` (any shape, C order) as ``[value, count, ...]``."""
    flat = np.ascontiguousarray(values).ravel()
    if flat.size == 0:
        return []
    starts = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate(([0], starts))
    counts = np.diff(np.concatenate((starts, [flat.size])))
    pairs = np.empty(2 * len(starts), dtype=np.int64)
    pairs[0::2] = flat[starts]
    pairs[1::2] = counts
    return pairs.tolist()


def rle_decode(runs: list[int], shape: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    """Inverse of :func:`rle_encode` for uint8 label values."""
    pairs = np.asarray(runs, dtype=np.int64).reshape(-1, 2)
    flat = np.repeat(pairs[:, 0], pairs[:, 1]).astype(np.uint8)
    if flat.size != int(np.prod(shape)):
        raise GeometryError(f"runs cover {flat.size} voxels, shape {shape} has {np.prod(shape)}")
    return flat.reshape(shape)


def box_json(box: tuple[slice, ...]) -> list[list[int]]:
    """Slices as ``[[start, stop], ...]`` (stop exclusive), array order."""
    return [[int(s.start), int(s.stop)] for s in box]


def nifti_bytes(image: Image) -> bytes:
    """``image`` (first channel) as an uncompressed NIfTI-1 file, geometry kept."""
    single = image if image.num_channels == 1 else image.with_array(image.array[:1])
    with tempfile.TemporaryDirectory(prefix="medseg-serve-") as folder:
        path = Path(folder) / "volume.nii"
        write_image(single, path)
        return path.read_bytes()
