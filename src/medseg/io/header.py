"""Header checks that run before any voxel is read.

A header can declare dimensions the file cannot hold (a corrupt or hostile file), and ITK's NIfTI
reader silently zero-fills truncated ``.nii``/``.nii.gz`` files. These checks refuse both with
:class:`~medseg.errors.ImageReadError` instead of allocating memory or returning garbage:
a voxel limit for every format, the exact data length for NIfTI and FreeSurfer MGH, and a
compression bound for single-file NRRD and MetaImage.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import Any

from medseg.errors import ImageReadError

MAX_VOXELS = 2**31
"""Largest voxel count (times channels) medseg reads: 8 GiB as float32."""

MAX_DEFLATE_RATIO = 1032
"""Most that zlib/gzip data can expand (1032:1), which bounds what a file of a given size holds."""


def check_voxel_count(path: Path | str, shape: tuple[int, ...], channels: int = 1) -> None:
    """Refuse headers that declare more than :data:`MAX_VOXELS` values (or a non-positive size)."""
    count = math.prod(shape) * channels
    if any(s <= 0 for s in shape) or channels <= 0:
        raise ImageReadError(f"{path}: header declares an empty or negative size {shape}")
    if count > MAX_VOXELS:
        raise ImageReadError(
            f"{path}: header declares {shape} x {channels} channel(s) = {count:.3g} voxels, more "
            f"than the limit of {MAX_VOXELS:.3g}; the file is corrupt or not a medical image"
        )


def read_itk_header(path: Path) -> Any:
    """Read only the header and check size (and, for NIfTI, version and data length).

    NIfTI headers are parsed by nibabel first (:func:`check_nifti_header`), which also knows
    NIfTI-2, so even a header SimpleITK cannot parse gets a precise message.

    Returns
    -------
    SimpleITK.ImageFileReader
        The reader after ``ReadImageInformation``: size, spacing, origin, direction, pixel
        type and component count are available, no voxel has been read.

    Raises
    ------
    ImageReadError
        If the header cannot be parsed, the size is absurd, or a NIfTI file is NIfTI-2 or holds
        fewer voxel bytes than its header declares.
    """
    import SimpleITK as sitk

    if path.name.lower().endswith((".nii", ".nii.gz")):
        check_nifti_header(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        if "orthonormal" in str(err):
            raise ImageReadError(
                f"{path}: the header's direction is not orthonormal (a sheared or scaled "
                "affine), which ITK cannot represent; resample the image onto an orthonormal "
                "grid or fix its qform/sform"
            ) from err
        raise ImageReadError(
            f"{path}: not a readable image (unknown format, corrupt header or wrong suffix)"
        ) from err
    size, channels = tuple(reader.GetSize()), reader.GetNumberOfComponents()
    check_voxel_count(path, size, channels)
    if path.name.lower().endswith((".nrrd", ".mha")):
        check_single_file_size(path, math.prod(size) * channels)
    return reader


def check_single_file_size(path: Path, values: int) -> None:
    """Refuse a header+data file too small to hold ``values`` voxel values, even compressed.

    Each value takes at least one byte and deflate expands at most :data:`MAX_DEFLATE_RATIO`
    times, so a corrupt header is caught here instead of by a failed multi-GB allocation.
    """
    size = path.stat().st_size
    if values > MAX_DEFLATE_RATIO * size:
        raise ImageReadError(
            f"{path}: header declares {values:.3g} voxel values but the file has only {size} "
            "bytes, too few even if compressed; the file is truncated or corrupt"
        )


def check_nifti_header(path: Path) -> None:
    """Check a NIfTI header with nibabel: sane size, NIfTI-1, and all voxel bytes present.

    For ``.nii`` the file size is compared with ``vox_offset + voxel bytes``. For ``.nii.gz`` the
    gzip trailer (uncompressed size modulo 2^32) is compared first; only if it disagrees (a
    truncated file or a multi-member gzip) is the stream decompressed to count its bytes.
    """
    import nibabel as nib

    try:
        nifti = nib.load(path)
    except Exception as err:  # nibabel and gzip raise many types for non-NIfTI bytes
        raise ImageReadError(f"{path}: not a readable NIfTI image ({err})") from err
    if not isinstance(nifti, nib.Nifti1Image | nib.Nifti2Image):
        raise ImageReadError(
            f"{path}: {type(nifti).__name__.removesuffix('Image')} file (surface or connectivity "
            "data, not a voxel image); medseg reads NIfTI volumes"
        )
    header = nifti.header
    shape = tuple(int(s) for s in header.get_data_shape())
    check_voxel_count(path, shape)
    if isinstance(header, nib.Nifti2Header):
        raise ImageReadError(
            f"{path}: NIfTI-2 is not supported (SimpleITK cannot read it); save it as NIfTI-1, "
            "e.g. nibabel.save(nibabel.Nifti1Image(img.dataobj, img.affine), 'out.nii.gz')"
        )
    # ``nifti.header`` is a copy whose vox_offset nibabel resets; the proxy keeps the file's.
    offset = int(nifti.dataobj.offset)
    expected = offset + math.prod(shape) * header.get_data_dtype().itemsize
    _check_data_length(path, expected, compressed=not path.name.lower().endswith(".nii"))


MGH_DATA_OFFSET = 284
"""Bytes before the voxels of a FreeSurfer MGH file (a fixed-size big-endian header)."""
_MGH_ITEMSIZE = {0: 1, 1: 4, 3: 4, 4: 2}  # MRI_UCHAR, MRI_INT, MRI_FLOAT, MRI_SHORT


def check_mgh_header(path: Path) -> tuple[int, ...]:
    """Check a FreeSurfer ``.mgh``/``.mgz`` header before nibabel maps or reads any voxel.

    The header's four dimensions (x, y, z, frames) and voxel type give the data length, which
    must fit the voxel limit and be present in the file (for ``.mgz``, in the gzip stream).

    Returns
    -------
    tuple of int
        The header's (x, y, z, frames).
    """
    opener = gzip.open if path.name.lower().endswith(".mgz") else open
    try:
        with opener(path, "rb") as file:
            head = file.read(28)
    except (OSError, EOFError, zlib.error) as err:
        raise ImageReadError(f"{path}: not a readable MGH image ({err})") from err
    if len(head) < 28:
        raise ImageReadError(f"{path}: not a readable MGH image (header cut short)")
    version, *dims, kind, _dof = (int.from_bytes(head[i : i + 4], "big", signed=True)
                                  for i in range(0, 28, 4))  # fmt: skip
    if version != 1 or kind not in _MGH_ITEMSIZE:
        raise ImageReadError(
            f"{path}: not a readable MGH image (version {version}, voxel type {kind})"
        )
    shape = tuple(dims)
    check_voxel_count(path, shape)
    expected = MGH_DATA_OFFSET + math.prod(shape) * _MGH_ITEMSIZE[kind]
    _check_data_length(path, expected, compressed=opener is not open)
    return shape


def _check_data_length(path: Path, expected: int, *, compressed: bool) -> None:
    """Raise :class:`ImageReadError` unless the file (or its gzip stream) has ``expected`` bytes."""
    actual = _gzip_length(path, expected) if compressed else path.stat().st_size
    if actual < 0:
        raise ImageReadError(
            f"{path}: compressed data is corrupt or cut short (truncated download?); "
            "re-export or re-download it"
        )
    if actual < expected:
        raise ImageReadError(
            f"{path}: file is truncated: header declares {expected} bytes, file holds {actual}; "
            "re-export or re-download it"
        )


def _gzip_length(path: Path, expected: int) -> int:
    """Uncompressed length of a gzip file, or ``-1`` if the stream is corrupt or cut short."""
    with path.open("rb") as file:
        file.seek(max(path.stat().st_size - 4, 0))
        trailer = int.from_bytes(file.read(4), "little")
    if trailer == expected % 2**32:
        return expected
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 24):
                total += len(chunk)
    except (EOFError, OSError, zlib.error):
        return -1
    return total
