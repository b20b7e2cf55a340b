"""NIfTI, NRRD and MetaImage through SimpleITK, converting ITK's (x, y, z) to array order.

ITK orders spatial axes ``(x, y, z)`` and reports physical coordinates in LPS; medseg keeps the
LPS coordinates but reverses every axis to array order ``(z, y, x)``: ``spacing`` and ``origin``
are reversed tuples and ``direction`` is ITK's matrix with rows and columns reversed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import ImageReadError, ImageWriteError
from medseg.io.header import read_itk_header
from medseg.io.image import Image
from medseg.io.nifti import (
    flat_vector_affine,
    geometry_from_affine,
    mark_nifti_3d,
    read_nifti_array,
)


def read_itk(path: Path) -> Image:
    """Read a file SimpleITK understands into a channel-first :class:`Image`.

    The header is checked first (:func:`medseg.io.header.read_itk_header`), so absurd or
    truncated files are refused before any voxel is read. NIfTI voxels are read by nibabel
    (see :mod:`medseg.io.nifti`) because ITK's NIfTI reader turns NaN and inf into 0; the
    geometry always comes from ITK.

    Raises
    ------
    ImageReadError
        If the file is not an image, is truncated or corrupt, or is not 2D/3D.
    """
    import SimpleITK as sitk

    reader = read_itk_header(path)
    _check_dimension(reader.GetDimension(), path)
    meta = {"source": str(path)}
    if path.name.lower().endswith((".nii", ".nii.gz")):
        affine = flat_vector_affine(path, reader.GetDimension())
        if affine is None:
            return _with_itk_geometry(read_nifti_array(path, reader), reader, meta)
        spacing, origin, direction = geometry_from_affine(affine, path)
        array = read_nifti_array(path, reader, ndim=3)
        return Image(array=array, spacing=spacing, origin=origin, direction=direction, meta=meta)
    try:
        itk_image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ImageReadError(
            f"{path}: cannot read voxels, the file is truncated or corrupt ({itk_message(err)})"
        ) from err
    return from_sitk(itk_image, meta=meta, source=path)


def from_sitk(
    itk_image: Any, meta: dict[str, Any] | None = None, source: Path | None = None
) -> Image:
    """Convert a ``SimpleITK.Image`` to an :class:`Image`; vector pixels become channels.

    Parameters
    ----------
    itk_image : SimpleITK.Image
        A 2D or 3D image, scalar or vector pixels.
    meta : dict, optional
        Copied into ``Image.meta``.
    source : Path, optional
        File named in the error raised for images that are not 2D or 3D.

    Returns
    -------
    Image
        ``array`` of shape ``(C, Z, Y, X)`` or ``(C, Y, X)``; geometry in array order.
    """
    import SimpleITK as sitk

    _check_dimension(itk_image.GetDimension(), source)
    array = sitk.GetArrayFromImage(itk_image)  # (Z, Y, X[, C])
    if itk_image.GetNumberOfComponentsPerPixel() > 1:
        array = np.moveaxis(array, -1, 0)
    else:
        array = array[None]
    return _with_itk_geometry(np.ascontiguousarray(array), itk_image, meta or {})


def _with_itk_geometry(array: npt.NDArray[Any], itk_geometry: Any, meta: dict[str, Any]) -> Image:
    """Wrap a ``(C, Z, Y, X)`` array with the geometry of an ITK image or header reader."""
    ndim = len(itk_geometry.GetSpacing())
    direction_xyz = np.asarray(itk_geometry.GetDirection(), dtype=np.float64).reshape(ndim, ndim)
    return Image(
        array=array,
        spacing=tuple(reversed(itk_geometry.GetSpacing())),
        origin=tuple(reversed(itk_geometry.GetOrigin())),
        direction=direction_xyz[::-1, ::-1].copy(),
        meta=dict(meta),
    )


def _check_dimension(ndim: int, source: Path | None) -> None:
    if ndim not in (2, 3):
        raise ImageReadError(
            f"{source or 'image'}: {ndim}D images are not supported; medseg reads 2D and 3D "
            "images (store each channel or time point as its own 3D file)"
        )


def to_sitk(image: Image) -> Any:
    """Convert an :class:`Image` to a ``SimpleITK.Image``.

    Several channels become a vector image; ``bool`` arrays are stored as ``uint8`` (0/1).
    """
    import SimpleITK as sitk

    array = image.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    array = array.astype(array.dtype.newbyteorder("="), copy=False)
    if image.num_channels == 1:
        itk_image = sitk.GetImageFromArray(array[0])
    else:
        itk_image = sitk.GetImageFromArray(np.moveaxis(array, 0, -1), isVector=True)
    itk_image.SetSpacing(tuple(reversed(image.spacing)))
    itk_image.SetOrigin(tuple(reversed(image.origin)))
    itk_image.SetDirection(tuple(image.direction[::-1, ::-1].ravel()))
    return itk_image


def write_itk(image: Image, path: Path) -> None:
    """Write with SimpleITK; the format follows the file suffix. Compression is on.

    ``.mhd`` and ``.nhdr`` headers get a detached data file beside them (``.zraw``,
    ``.raw.gz``). ``bool`` is stored as ``uint8``.

    Raises
    ------
    ImageWriteError
        For ``float16``, complex or non-numeric voxels, or if SimpleITK fails.
    """
    import SimpleITK as sitk

    dtype = image.array.dtype
    if dtype.kind not in "biuf" or dtype == np.float16:
        raise ImageWriteError(
            f"{path}: voxel type {dtype} cannot be stored; cast to float32 or an integer type"
        )
    try:
        sitk.WriteImage(to_sitk(image), str(path), useCompression=True)
    except RuntimeError as err:
        raise ImageWriteError(f"{path}: cannot write image ({itk_message(err)})") from err
    flat_vector = image.ndim == 3 and image.spatial_shape[0] == 1 and image.num_channels > 1
    if flat_vector and path.name.lower().endswith((".nii", ".nii.gz")):
        mark_nifti_3d(path)


def itk_message(err: Exception) -> str:
    """The informative part of an ITK exception: its ``ERROR`` line without class and address."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    chosen = next((line for line in lines if "ERROR" in line), lines[0] if lines else repr(err))
    chosen = chosen.split("ERROR:", 1)[-1]
    return re.sub(r"\w+\(0x[0-9a-fA-F]+\):\s*", "", chosen).strip()[:300]
