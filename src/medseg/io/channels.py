"""Multi-channel cases in nnU-Net naming: ``case_0000.nii.gz``, ``case_0001.nii.gz``, ...

Each file holds one or more channels of the same case on the same voxel grid;
:func:`read_channels` stacks them along the channel axis into one :class:`Image`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg._typing import PathLikeStr
from medseg.errors import DatasetError, GeometryError, ImageReadError
from medseg.io.image import Image, geometry_differences
from medseg.io.readers import read_image


def read_channels(paths: Sequence[PathLikeStr], *, atol: float = 1e-3) -> Image:
    """Read the channel files of one case and stack them into one channel-first image.

    Parameters
    ----------
    paths : sequence of path
        Channel files in channel order (``case_0000``, ``case_0001``, ...). Each file may itself
        hold several channels (e.g. an RGB PNG); they are concatenated in file order.
    atol : float, default 1e-3
        Tolerance in mm (spacing, origin) and unitless (direction cosines) for the geometry check.

    Returns
    -------
    Image
        ``array`` of shape ``(C, Z, Y, X)`` or ``(C, Y, X)``, where ``C`` is the total channel
        count, with the common dtype of all files (``numpy.result_type``). Geometry and ``meta``
        come from the first file; ``meta["channel_files"]`` lists every path.

    Raises
    ------
    ImageReadError
        If ``paths`` is empty or a file cannot be read.
    GeometryError
        If a file's shape, spacing, origin or direction differs from the first file's; the
        message names that file.
    """
    if len(paths) == 0:
        raise ImageReadError("read_channels: no channel files given")
    images = [read_image(path) for path in paths]
    first = images[0]
    for path, image in zip(paths[1:], images[1:], strict=True):
        problems = geometry_differences(first, image, atol=atol)
        if problems:
            raise GeometryError(
                f"{path}: geometry differs from channel file {paths[0]}: "
                + "; ".join(problems)
                + "; all channels of a case must share one voxel grid (resample them first)"
            )
    dtype = np.result_type(*(image.array.dtype for image in images))
    array = np.concatenate([image.array.astype(dtype, copy=False) for image in images], axis=0)
    meta = {**first.meta, "channel_files": [str(path) for path in paths]}
    return Image(
        array=array,
        spacing=first.spacing,
        origin=first.origin,
        direction=first.direction,
        meta=meta,
    )


def find_channel_files(folder: PathLikeStr, case_id: str, file_ending: str) -> list[Path]:
    """Find ``{case_id}_{XXXX}{file_ending}`` channel files of one case, sorted by channel index.

    Parameters
    ----------
    folder : path
        Folder to search (not recursive).
    case_id : str
        Case identifier, matched exactly (``case_1`` does not match ``case_10_0000.nii.gz``).
    file_ending : str
        File ending including the dot, e.g. ``".nii.gz"`` or ``".png"``.

    Returns
    -------
    list of Path
        Channel files ordered ``_0000, _0001, ...``.

    Raises
    ------
    ImageReadError
        If ``folder`` is not a directory.
    DatasetError
        If no channel file exists for the case, or the channel indices are not ``0 .. n-1``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(f"{folder}: folder not found")
    pattern = re.compile(re.escape(case_id) + r"_(\d{4})" + re.escape(file_ending))
    found: dict[int, Path] = {}
    for entry in folder.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and entry.is_file():
            found[int(match.group(1))] = entry
    if not found:
        raise DatasetError(
            f"{folder}: no channel files for case {case_id!r} "
            f"(expected {case_id}_0000{file_ending}, {case_id}_0001{file_ending}, ...)"
        )
    indices = sorted(found)
    if indices != list(range(len(indices))):
        missing = sorted(set(range(indices[-1] + 1)) - set(indices))
        raise DatasetError(
            f"{folder}: case {case_id!r} lacks channel file(s) "
            + ", ".join(f"{case_id}_{i:04d}{file_ending}" for i in missing)
        )
    return [found[i] for i in indices]
