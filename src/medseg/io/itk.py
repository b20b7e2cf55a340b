"""NIfTI, NRRD and MetaImage through SimpleITK, converting ITK's (x, y, z) to array order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.errors import ImageReadError, ImageWriteError
from medseg.io.image import Image


def read_itk(path: Path) -> Image:
    """Read a file SimpleITK understands into a channel-first :class:`Image`."""
    import SimpleITK as sitk

    try:
        itk_image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ImageReadError(f"{path}: cannot read image ({_first_line(err)})") from err
    return from_sitk(itk_image, meta={"source": str(path)})


def from_sitk(itk_image, meta: dict | None = None) -> Image:  # type: ignore[no-untyped-def]
    """Convert a ``SimpleITK.Image`` (vector pixels become channels) to an :class:`Image`."""
    import SimpleITK as sitk

    ndim = itk_image.GetDimension()
    array = sitk.GetArrayFromImage(itk_image)  # (Z, Y, X[, C])
    if itk_image.GetNumberOfComponentsPerPixel() > 1:
        array = np.moveaxis(array, -1, 0)
    else:
        array = array[None]
    direction_xyz = np.asarray(itk_image.GetDirection(), dtype=np.float64).reshape(ndim, ndim)
    return Image(
        array=array,
        spacing=tuple(reversed(itk_image.GetSpacing())),
        origin=tuple(reversed(itk_image.GetOrigin())),
        direction=direction_xyz[::-1, ::-1].copy(),
        meta=dict(meta or {}),
    )


def to_sitk(image: Image):  # type: ignore[no-untyped-def]
    """Convert an :class:`Image` to a ``SimpleITK.Image`` (several channels become a vector image)."""
    import SimpleITK as sitk

    array = image.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if image.num_channels == 1:
        itk_image = sitk.GetImageFromArray(array[0])
    else:
        itk_image = sitk.GetImageFromArray(np.moveaxis(array, 0, -1), isVector=True)
    itk_image.SetSpacing(tuple(reversed(image.spacing)))
    itk_image.SetOrigin(tuple(reversed(image.origin)))
    itk_image.SetDirection(tuple(image.direction[::-1, ::-1].ravel()))
    return itk_image


def write_itk(image: Image, path: Path) -> None:
    """Write with SimpleITK; the format follows the file suffix. Compression is on."""
    import SimpleITK as sitk

    try:
        sitk.WriteImage(to_sitk(image), str(path), useCompression=True)
    except RuntimeError as err:
        raise ImageWriteError(f"{path}: cannot write image ({_first_line(err)})") from err


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
