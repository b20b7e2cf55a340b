"""NIfTI voxels through nibabel (geometry from SimpleITK's header reader), and FreeSurfer MGH.

ITK's NIfTI reader (up to ITK 5) silently replaces NaN and inf with 0 (ITK pull request #6683),
which would hide exactly the voxels a dataset check must report. medseg therefore takes the
voxels from nibabel (``scl_slope``/``scl_inter`` applied, in native byte order) and spacing,
origin and direction from ITK, so the geometry convention (LPS, ITK's qform/sform choice) stays
ITK's.

One exception: ITK reads a multi-channel (vector) NIfTI whose z size is 1 as a 2D image and drops
the z spacing, origin and direction. medseg reads such a file as 3D ``(C, 1, Y, X)``, with the
geometry of nibabel's affine, when the header marks it as 3D (``intent_name`` ``medseg 3D``, which
:func:`mark_nifti_3d` writes) or its z axis carries geometry (a z spacing other than 1 mm, a z
origin other than 0 or an oblique z axis).

MGH/MGZ (FreeSurfer) files are read with nibabel; their RAS affine is converted to LPS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import ImageReadError
from medseg.io.header import check_mgh_header
from medseg.io.image import Image

NIFTI_3D_MARK = b"medseg 3D"
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def read_nifti_array(path: Path, reader: Any, ndim: int | None = None) -> npt.NDArray[Any]:
    """Voxels of a NIfTI file whose header ``reader`` (``SimpleITK.ImageFileReader``) checked.

    Parameters
    ----------
    ndim : int, optional
        Spatial dimensions to return; default ITK's. 3 promotes a 2D ITK view to ``(C, 1, Y, X)``.

    Returns
    -------
    ndarray, shape (C, Z, Y, X) or (C, Y, X)
        One channel per pixel component (vector intent, RGB); dtype as stored (native byte
        order), or float after ``scl_slope``/``scl_inter`` scaling.
    """
    import nibabel as nib

    size_xyz = tuple(int(s) for s in reader.GetSize())
    if ndim is not None and ndim > len(size_xyz):
        size_xyz = (*size_xyz, *([1] * (ndim - len(size_xyz))))
    channels = int(reader.GetNumberOfComponents())
    try:
        data = np.asanyarray(nib.load(path, mmap=False).dataobj)
    except Exception as err:  # nibabel and gzip raise many types for corrupt data
        raise ImageReadError(f"{path}: cannot read NIfTI voxels ({err})") from err
    if data.dtype.fields:  # RGB24 / RGBA32 as a structured dtype
        data = np.stack([data[name] for name in data.dtype.names], axis=-1)
    data = data.astype(data.dtype.newbyteorder("="), copy=False)
    if [s for s in data.shape if s != 1] != [s for s in (*size_xyz, channels) if s != 1]:
        raise ImageReadError(
            f"{path}: voxel array shape {data.shape} does not match header size {size_xyz} "
            f"with {channels} component(s); unsupported NIfTI layout"
        )
    # nibabel indexes (x, y, z[, t], c); dropping singleton axes leaves (x, y, z, c).
    data = data.reshape(*size_xyz, channels)
    ndim = len(size_xyz)
    return np.ascontiguousarray(np.moveaxis(data, -1, 0).transpose(0, *range(ndim, 0, -1)))


def flat_vector_affine(path: Path, itk_ndim: int) -> npt.NDArray[np.float64] | None:
    """nibabel's RAS affine if ITK reads a 3D vector NIfTI with one slice as 2D, else None.

    See the module docstring for when a one-slice vector file counts as 3D.
    """
    import nibabel as nib

    if itk_ndim != 2:
        return None
    header = nib.load(path).header
    dims = header["dim"]
    if dims[0] < 3 or dims[3] != 1:
        return None
    affine = header.get_best_affine()
    z_axis = affine[:3, 2]
    trivial_z = np.allclose(z_axis, (0, 0, 1)) and np.isclose(affine[2, 3], 0)
    marked = bytes(header["intent_name"]).rstrip(b"\0") == NIFTI_3D_MARK
    return affine if marked or not trivial_z else None


def mark_nifti_3d(path: Path) -> None:
    """Mark a one-slice vector NIfTI written by ITK as 3D (``intent_name``), for the reader."""
    import nibabel as nib

    nifti = nib.load(path, mmap=False)
    header = nifti.header.copy()
    header["intent_name"] = NIFTI_3D_MARK
    data = np.asanyarray(nifti.dataobj).astype(header.get_data_dtype(), copy=False)
    nib.save(nib.Nifti1Image(data, None, header), path)


def geometry_from_affine(
    affine_ras: npt.NDArray[np.float64], path: Path
) -> tuple[tuple[float, ...], tuple[float, ...], npt.NDArray[np.float64]]:
    """Spacing, origin (array order z, y, x; LPS mm) and 3x3 direction of a nibabel affine.

    Raises
    ------
    ImageReadError
        If the affine's axes are not orthogonal (sheared), which an :class:`Image` cannot hold.
    """
    linear = _RAS_TO_LPS @ affine_ras[:3, :3]
    spacing_xyz = np.linalg.norm(linear, axis=0)
    if np.any(spacing_xyz <= 0):
        raise ImageReadError(f"{path}: the header's affine has a zero-length axis; fix it")
    direction_xyz = linear / spacing_xyz
    if not np.allclose(direction_xyz.T @ direction_xyz, np.eye(3), atol=1e-4):
        raise ImageReadError(
            f"{path}: the header's direction is not orthonormal (a sheared affine); resample "
            "the image onto an orthonormal grid or fix its header"
        )
    origin_xyz = _RAS_TO_LPS @ affine_ras[:3, 3]
    return (
        tuple(float(s) for s in spacing_xyz[::-1]),
        tuple(float(o) for o in origin_xyz[::-1]),
        direction_xyz[::-1, ::-1].copy(),
    )


def read_mgh(path: Path) -> Image:
    """Read a FreeSurfer ``.mgh``/``.mgz`` volume with nibabel.

    Returns
    -------
    Image
        ``array`` of shape ``(1, Z, Y, X)`` in the stored dtype; geometry from the file's affine
        (RAS converted to LPS), array order.

    Raises
    ------
    ImageReadError
        If the file is not MGH, is truncated, holds several frames, or has a sheared affine.
    """
    import nibabel as nib

    check_mgh_header(path)  # size and data length, before nibabel maps or reads voxels
    try:
        mgh = nib.load(path)
        shape = tuple(int(s) for s in mgh.header.get_data_shape())
    except Exception as err:  # nibabel and gzip raise many types for corrupt data
        raise ImageReadError(f"{path}: not a readable MGH image ({_one_line(err)})") from err
    if len(shape) == 4 and shape[3] > 1:
        raise ImageReadError(
            f"{path}: MGH file holds {shape[3]} frames of {shape[:3]}; medseg reads one 3D "
            "volume per file (split the frames, e.g. with mri_convert --frame)"
        )
    spacing, origin, direction = geometry_from_affine(mgh.affine, path)
    try:
        data = np.asanyarray(mgh.dataobj).reshape(shape[:3])
    except Exception as err:  # truncated gzip streams, short files
        raise ImageReadError(
            f"{path}: cannot read MGH voxels, truncated or corrupt ({_one_line(err)})"
        ) from err
    data = data.astype(data.dtype.newbyteorder("="), copy=False)
    return Image(
        array=np.ascontiguousarray(data.transpose(2, 1, 0))[None],
        spacing=spacing,
        origin=origin,
        direction=direction,
        meta={"source": str(path), "format": "mgh"},
    )


def _one_line(err: Exception) -> str:
    """A library's message on one line (nibabel's span several)."""
    return " ".join(str(err).split())
