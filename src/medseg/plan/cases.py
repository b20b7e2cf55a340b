"""Reading a case and cropping it to its nonzero region, shared by fingerprinting and preprocessing.

Arrays are channel-first ``(C, Z, Y, X)``; 2D images ``(C, Y, X)`` are given a leading axis of
size 1 so every later step works on 3D arrays (the 2D trainer samples slices along axis 0).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.data.dataset import Case
from medseg.errors import DatasetError, GeometryError
from medseg.io import Image, geometry_differences, read_image
from medseg.io.channels import read_channels

Bbox = tuple[tuple[int, int], ...]
"""Half-open ``(start, stop)`` voxel ranges per spatial axis, array order (z, y, x)."""


def read_case(
    case: Case, allowed: Collection[int] | None = None
) -> tuple[Image, npt.NDArray[np.integer] | None]:
    """Read all channels of ``case`` and its label map.

    Parameters
    ----------
    case : Case
    allowed : collection of int, optional
        The label values the dataset declares (``LabelSpec.allowed_values``); a label map with
        any other value is an error, before anything crops or maps it away.

    Returns
    -------
    image : Image
        ``(C, Z, Y, X)`` or ``(C, Y, X)``, channels in ``case.image_paths`` order.
    label : ndarray of int, shape (Z, Y, X) or (Y, X), or None
        The label map on the image grid, ``None`` for an unlabelled case.

    Raises
    ------
    GeometryError
        If the label's grid differs from the image's.
    DatasetError
        If the label map holds a value outside ``allowed``.
    """
    image = read_channels(case.image_paths)
    if case.label_path is None:
        return image, None
    return image, read_label(case.label_path, image, allowed, image_path=case.image_paths[0])


def read_label(
    path: Path, image: Image, allowed: Collection[int] | None = None, *, image_path: Path
) -> npt.NDArray[np.integer]:
    """The label map in ``path`` (Z, Y, X) or (Y, X), on the grid of ``image`` (``image_path``).

    Raises
    ------
    GeometryError
        If the label's grid differs from the image's.
    DatasetError
        If the label map holds a value outside ``allowed``.
    """
    label_image = read_image(path)
    problems = geometry_differences(image, label_image)
    if problems:
        raise GeometryError(
            f"{path}: label grid differs from image {image_path}: "
            + "; ".join(problems)
            + "; resample the label onto the image grid"
        )
    label = label_image.array[0]
    if not np.issubdtype(label.dtype, np.integer):
        label = np.rint(label).astype(np.int32)
    if allowed is not None:
        check_label_values(label, allowed, str(path))
    return label


def check_label_values(
    label: npt.NDArray[np.integer], allowed: Collection[int], source: str
) -> None:
    """Raise :class:`DatasetError` naming ``source`` if ``label`` holds an undeclared value."""
    unknown = sorted(set(np.unique(label).tolist()) - set(allowed))
    if unknown:
        raise DatasetError(
            f"{source}: label values {unknown} not declared in the dataset labels "
            f"{sorted(allowed)}; correct the label map or declare the values in dataset.json "
            "(`medseg check DATASET` lists every case)"
        )


def plan_label_values(
    labels: dict[str, int], regions: dict[str, tuple[int, ...]], ignore: int | None
) -> frozenset[int]:
    """Every value a label map may hold under a plan: 0, labels, region members, ignore."""
    values = {0, *labels.values(), *(v for members in regions.values() for v in members)}
    return frozenset(values if ignore is None else values | {ignore})


def as_3d(array: npt.NDArray, ndim: int) -> npt.NDArray:
    """Add a leading spatial axis of size 1 to a channel-first 2D array (``ndim`` = 2)."""
    return array[:, None] if ndim == 2 else array


def nonzero_mask(array: npt.NDArray) -> npt.NDArray[np.bool_]:
    """Voxels that are nonzero in any channel, with holes filled.

    Parameters
    ----------
    array : ndarray, shape (C, Z, Y, X)

    Returns
    -------
    ndarray of bool, shape (Z, Y, X)
    """
    mask = np.any(array != 0, axis=0)
    return ndimage.binary_fill_holes(mask)


def bbox_of(mask: npt.NDArray[np.bool_]) -> Bbox:
    """Smallest box holding every True voxel; the whole array if the mask is empty."""
    if not mask.any():
        return tuple((0, int(s)) for s in mask.shape)
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        box.append((int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def crop_slices(bbox: Bbox) -> tuple[slice, ...]:
    """``bbox`` as a tuple of slices over the spatial axes."""
    return tuple(slice(start, stop) for start, stop in bbox)


def input_signature(case: Case) -> list[list[str | int]]:
    """``[path, mtime_ns, size]`` for every input file of ``case``: changes when a file changes."""
    paths = [*case.image_paths, *([case.label_path] if case.label_path else []), *case.rater_paths]
    rows: list[list[str | int]] = []
    for path in paths:
        stat = path.stat()
        rows.append([str(path), stat.st_mtime_ns, stat.st_size])
    return rows
