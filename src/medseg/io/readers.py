"""Format dispatch for :func:`read_image` and :func:`write_image`: the suffix picks the format.

=====================  ==============================  =====  ==================================
Suffix                 Format                          Write  Library
=====================  ==============================  =====  ==================================
``.nii``, ``.nii.gz``  NIfTI-1                         yes    SimpleITK header, nibabel voxels
``.nrrd``, ``.nhdr``   NRRD (``.nhdr``: detached)      yes    SimpleITK
``.mha``, ``.mhd``     MetaImage (``.mhd``: detached)  yes    SimpleITK
``.dcm``, ``.dcm.gz``  one DICOM file (also any file   no     pydicom (+ pylibjpeg decoders)
                       with the DICM preamble)
folder                 DICOM series                    no     pydicom
``.mgz``, ``.mgh``     FreeSurfer MGH                  no     nibabel
``.png``               PNG, 2D                         yes    Pillow
``.jpg``, ``.jpeg``    JPEG, 2D                        no     Pillow
``.tif``, ``.tiff``    TIFF, 2D                        yes    tifffile
=====================  ==============================  =====  ==================================
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from medseg._typing import PathLikeStr
from medseg.errors import ImageReadError, ImageWriteError
from medseg.io.dicom import read_dicom_series
from medseg.io.dicom_file import read_dicom_file
from medseg.io.dicom_pixels import has_dicom_preamble
from medseg.io.image import Image
from medseg.io.itk import read_itk, write_itk
from medseg.io.nifti import read_mgh
from medseg.io.raster2d import (
    PILLOW_SUFFIXES,
    TIFF_SUFFIXES,
    read_raster,
    write_raster,
)

ITK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_SUFFIXES = (".dcm", ".dcm.gz")
MGH_SUFFIXES = (".mgz", ".mgh")
READ_SUFFIXES = (*ITK_SUFFIXES, *DICOM_SUFFIXES, *MGH_SUFFIXES, *PILLOW_SUFFIXES, *TIFF_SUFFIXES)
WRITE_SUFFIXES = (*ITK_SUFFIXES, ".png", *TIFF_SUFFIXES)
KNOWN_UNREAD = {
    (".par", ".rec"): "Philips PAR/REC",
    (".mnc",): "MINC",
    (".head", ".brik", ".brik.gz"): "AFNI BRIK/HEAD",
    (".v",): "ECAT",
    (".hdr", ".img"): "Analyze 7.5 / NIfTI pair (.hdr + .img)",
}
"""Formats nibabel reads but medseg does not: refused by name, with the conversion to use."""


def read_image(path: PathLikeStr, *, series_uid: str | None = None) -> Image:
    """Read an image file, or a folder holding a DICOM series, with its geometry.

    Parameters
    ----------
    path : path
        Image file (format from the suffix, see the module table) or DICOM series folder.
    series_uid : str, optional
        For a DICOM folder holding several series: the ``SeriesInstanceUID`` to read.

    Returns
    -------
    Image
        ``array`` of shape ``(C, Z, Y, X)`` (3D) or ``(C, Y, X)`` (2D), dtype as stored (after
        DICOM rescale); spacing and origin in mm and direction, all in array order (z, y, x),
        physical coordinates in LPS as in ITK and DICOM. NaN voxels are returned as they are.

    Raises
    ------
    ImageReadError
        If the path is missing, empty, of an unsupported type, not an image, truncated, or its
        header declares absurd dimensions, or ``series_uid`` is given for a file. The message
        names the path.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if path.is_dir():
        return read_dicom_series(path, series_uid=series_uid)
    if series_uid is not None:
        raise ImageReadError(f"{path}: a series UID applies to DICOM folders, not to files")
    name = path.name.lower()
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes)")
    if name.endswith(DICOM_SUFFIXES) or (
        not name.endswith(READ_SUFFIXES) and has_dicom_preamble(path)
    ):
        return read_dicom_file(path)
    for suffixes, format_name in KNOWN_UNREAD.items():
        if name.endswith(suffixes):
            raise ImageReadError(
                f"{path}: {format_name} is not read by medseg; convert it to .nii.gz first "
                "(nibabel reads it: nibabel.save(nibabel.load(path), 'image.nii.gz'))"
            )
    if not name.endswith(READ_SUFFIXES):
        raise ImageReadError(
            f"{path}: unsupported file type; medseg reads {', '.join(READ_SUFFIXES)}, "
            "DICOM files without a suffix and DICOM series folders"
        )
    if name.endswith(PILLOW_SUFFIXES + TIFF_SUFFIXES):
        return read_raster(path)
    if name.endswith(MGH_SUFFIXES):
        return read_mgh(path)
    return read_itk(path)


def write_image(image: Image, path: PathLikeStr) -> None:
    """Write ``image`` atomically; the suffix picks the format (see the module table).

    The image is written under its real file name into a temporary folder beside ``path``;
    the file(s) are then moved into place with ``os.replace`` (a detached ``.mhd``/``.nhdr``
    data file before its header), so readers never see a partial file.

    Raises
    ------
    ImageWriteError
        If the suffix is not writable, the image does not fit the format, or the folder is
        missing or not writable.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".jpg", ".jpeg")):
        raise ImageWriteError(f"{path}: JPEG is lossy and medseg does not write it; use .png/.tif")
    if not name.endswith(WRITE_SUFFIXES):
        raise ImageWriteError(
            f"{path}: cannot write this file type; medseg writes {', '.join(WRITE_SUFFIXES)} "
            "(DICOM is read-only)"
        )
    folder = path.parent
    if not folder.is_dir():
        raise ImageWriteError(f"{path}: output folder {folder} does not exist; create it first")
    try:
        tmp_dir = Path(tempfile.mkdtemp(prefix=".tmp-medseg-", dir=folder))
    except OSError as err:
        raise ImageWriteError(f"{path}: output folder is not writable ({err.strerror})") from err
    try:
        tmp = tmp_dir / path.name
        if name.endswith(ITK_SUFFIXES):
            write_itk(image, tmp)
        else:
            write_raster(image, tmp)
        header_last = sorted(tmp_dir.iterdir(), key=lambda p: p.name == path.name)
        for produced in header_last:
            os.replace(produced, folder / produced.name)
    except ImageWriteError as err:  # name the target, not the temporary file
        raise ImageWriteError(str(err).replace(str(tmp), str(path))) from err.__cause__
    except OSError as err:
        raise ImageWriteError(f"{path}: cannot write image ({err.strerror or err})") from err
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
