"""DICOM series in a folder: headers scanned and pixels decoded with pydicom.

Slices are sorted by their ``ImagePositionPatient`` projected on the slice normal
(``row cosine x column cosine``), never by file name or ``InstanceNumber``. Pixels are decoded by
pydicom with the rules of :mod:`medseg.io.dicom_pixels`: each slice's own modality LUT or
``RescaleSlope``/``RescaleIntercept`` applied (Hounsfield units for CT), MONOCHROME1 not
inverted; the result has the common dtype of all slices. Geometry is computed from
the headers: origin is the first slice's position, direction columns are (normal, column cosine,
row cosine) in array order, and the slice spacing is the median distance between positions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import ImageReadError
from medseg.io.dicom_pixels import decode_pixels, logged_warnings, open_dicom
from medseg.io.header import check_voxel_count
from medseg.io.image import Image

logger = logging.getLogger(__name__)

_REQUIRED_TAGS = [
    "SeriesInstanceUID",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
]
_HEADER_TAGS = [
    *_REQUIRED_TAGS,
    "SeriesDescription",
    "Modality",
]


@dataclass(frozen=True)
class _Slice:
    path: Path
    position: np.ndarray  # (3,) LPS mm, (x, y, z)
    orientation: np.ndarray  # (6,) row cosine then column cosine, (x, y, z)
    pixel_spacing: tuple[float, float]  # (between rows, between columns) mm
    shape: tuple[int, int]  # (rows, columns)
    description: str
    modality: str


def read_dicom_series(folder: Path, *, series_uid: str | None = None) -> Image:
    """Read the DICOM image series stored in ``folder`` (not recursive) as a 3D image.

    Parameters
    ----------
    folder : Path
        Folder holding the slice files; files that are not DICOM images are ignored.
    series_uid : str, optional
        ``SeriesInstanceUID`` to read when the folder holds several series.

    Returns
    -------
    Image
        ``array`` of shape ``(1, Z, Y, X)`` with rescale applied; ``spacing`` and ``origin`` in mm
        (array order, LPS); ``meta`` holds ``series_uid``, ``modality``, ``series_description``.

    Raises
    ------
    ImageReadError
        If the folder holds no DICOM image series, several series without ``series_uid``,
        slices with different orientations, sizes or overlapping positions, or a non-uniform
        slice spacing (missing slices).
    """
    with logged_warnings(str(folder)):
        series = _group_series(folder)
    if not series:
        raise ImageReadError(
            f"{folder}: no DICOM image series found in folder (DICOM images without "
            "ImagePositionPatient, such as radiographs, are read one file at a time)"
        )
    if series_uid is None:
        if len(series) > 1:
            listing = "; ".join(
                f"{uid} ({len(s)} files, {s[0].description or 'no description'})"
                for uid, s in series.items()
            )
            raise ImageReadError(
                f"{folder}: folder holds {len(series)} DICOM series: {listing}; "
                "choose one with --series UID (series_uid= in Python)"
            )
        series_uid = next(iter(series))
    if series_uid not in series:
        raise ImageReadError(
            f"{folder}: no DICOM series with SeriesInstanceUID {series_uid}; "
            f"found {', '.join(series)}"
        )
    slices = series[series_uid]
    normal, positions = _check_slices(folder, slices)
    order = np.argsort(positions, kind="stable")
    slices = [slices[i] for i in order]
    positions = positions[order]
    spacing_z = _slice_spacing(folder, positions)
    check_voxel_count(folder, (len(slices), *slices[0].shape))

    with logged_warnings(str(folder)):
        plane = _read_plane(slices[0])
        array = np.empty((len(slices), *plane.shape), plane.dtype)  # filled in place, one copy
        array[0] = plane
        for k, s in enumerate(slices[1:], start=1):
            plane = _read_plane(s)
            if (common := np.result_type(array.dtype, plane.dtype)) != array.dtype:
                array = array.astype(common)  # a slice whose rescale needs a wider type
            array[k] = plane
    first = slices[0]
    row_cosine, column_cosine = _unit(first.orientation[:3]), _unit(first.orientation[3:])
    direction_xyz = np.column_stack([row_cosine, column_cosine, normal])
    return Image(
        array=array[None],
        spacing=(spacing_z, *first.pixel_spacing),
        origin=tuple(first.position[::-1]),
        direction=direction_xyz[::-1, ::-1].copy(),
        meta={
            "source": str(folder),
            "series_uid": series_uid,
            "modality": first.modality,
            "series_description": first.description,
        },
    )


def _read_plane(s: _Slice) -> npt.NDArray[Any]:
    """Pixels of one single-frame slice, shape (Y, X), with its own rescale applied.

    Decoded by pydicom with the rules of :mod:`medseg.io.dicom_pixels` (modality LUT applied,
    MONOCHROME1 not inverted), each slice with its own ``RescaleSlope``/``RescaleIntercept``.
    """
    plane = decode_pixels(open_dicom(s.path), str(s.path))
    if plane.shape != (1, 1, *s.shape):
        raise ImageReadError(
            f"{s.path}: expected one {s.shape} frame, decoded shape {plane.shape} (C, F, Y, X); "
            "multi-frame and colour DICOM are not supported in series folders"
        )
    return plane[0, 0]


def _group_series(folder: Path) -> dict[str, list[_Slice]]:
    """Headers of every DICOM image file in ``folder``, grouped by ``SeriesInstanceUID``."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    groups: dict[str, list[_Slice]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            logger.debug("%s: not a DICOM file, ignored", path)
            continue
        if not all(tag in ds for tag in _REQUIRED_TAGS):
            logger.debug("%s: DICOM file without image geometry, ignored", path)
            continue
        uid = str(ds.SeriesInstanceUID)
        groups.setdefault(uid, []).append(
            _Slice(
                path=path,
                position=np.asarray([float(v) for v in ds.ImagePositionPatient]),
                orientation=np.asarray([float(v) for v in ds.ImageOrientationPatient]),
                pixel_spacing=(float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])),
                shape=(int(ds.Rows), int(ds.Columns)),
                description=str(ds.get("SeriesDescription", "")),
                modality=str(ds.get("Modality", "")),
            )
        )
    return groups


def _check_slices(folder: Path, slices: list[_Slice]) -> tuple[np.ndarray, np.ndarray]:
    """Slice normal (x, y, z) and each slice's position along it (mm), after consistency checks."""
    first = slices[0]
    for s in slices[1:]:
        if not np.allclose(s.orientation, first.orientation, atol=1e-4):
            raise ImageReadError(
                f"{folder}: {s.path.name} has ImageOrientationPatient {s.orientation.tolist()}, "
                f"{first.path.name} has {first.orientation.tolist()}; one series, one orientation"
            )
        if s.shape != first.shape or not np.allclose(s.pixel_spacing, first.pixel_spacing):
            raise ImageReadError(
                f"{folder}: {s.path.name} has size/pixel spacing {s.shape}/{s.pixel_spacing}, "
                f"{first.path.name} has {first.shape}/{first.pixel_spacing}"
            )
    normal = np.cross(first.orientation[:3], first.orientation[3:])
    if np.linalg.norm(normal) < 0.5:
        raise ImageReadError(
            f"{folder}: {first.path.name} has a degenerate ImageOrientationPatient "
            f"{first.orientation.tolist()} (row and column cosines must be orthogonal unit vectors)"
        )
    normal = _unit(normal)
    positions = np.asarray([float(s.position @ normal) for s in slices])
    if len(np.unique(np.round(positions, 4))) != len(positions):
        raise ImageReadError(
            f"{folder}: several slices share one position; the series holds more than one "
            "volume (time points, echoes): split it into one folder per volume"
        )
    return normal, positions


def _unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (DICOM cosines are decimal strings, rarely exactly unit)."""
    return vector / np.linalg.norm(vector)


def _slice_spacing(folder: Path, positions: np.ndarray) -> float:
    """Median distance (mm) between sorted slice positions; refuse non-uniform gaps."""
    if len(positions) < 2:
        raise ImageReadError(
            f"{folder}: the series has a single slice, so no slice spacing; read the .dcm file "
            "itself instead (one slice, Z = 1)"
        )
    gaps = np.diff(positions)
    spacing = float(np.median(gaps))
    if np.max(np.abs(gaps - spacing)) > max(0.01, 0.01 * spacing):
        raise ImageReadError(
            f"{folder}: slice spacing is not uniform ({gaps.min():.4g} to {gaps.max():.4g} mm); "
            "slices are missing or the series mixes acquisitions"
        )
    return spacing
