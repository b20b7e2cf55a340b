"""One DICOM file (single- or multi-frame) read with pydicom, geometry from its own tags.

A file is DICOM if its name ends in ``.dcm`` or ``.dcm.gz`` or its bytes 128-131 are ``DICM``
(the preamble most DICOM files in the wild carry, with or without a suffix). Gzipped files are
decompressed in memory. The pixel rules are those of :mod:`medseg.io.dicom_pixels`.

Geometry, in array order ``(z, y, x)`` and LPS millimetres:

* in-plane spacing from ``PixelSpacing`` (rows, columns), else ``ImagerPixelSpacing``, else 1 mm;
* origin from ``ImagePositionPatient`` and direction from ``ImageOrientationPatient`` (columns
  in ITK order: row cosine, column cosine, their cross product), identity without them;
* frames of a multi-frame file are slices at their *Plane Position* (enhanced files) or at
  ``GridFrameOffsetVector`` along the normal (RT dose); they must be evenly spaced along one
  line. Without positions, and for a single frame, the slice spacing is
  ``SpacingBetweenSlices``, else ``SliceThickness``, else 1 mm.

Segmentation Storage objects are read by :mod:`medseg.io.dicom_seg`; Siemens mosaics are refused
(the slices are tiled in one frame; convert them with dcm2niix).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import ImageReadError
from medseg.io.dicom_pixels import decode_pixels, logged_warnings, open_dicom
from medseg.io.dicom_seg import SEGMENTATION_SOP_CLASSES, labels_from_dataset
from medseg.io.image import Image


def read_dicom_file(path: Path) -> Image:
    """Read one DICOM file as a 3D image.

    Returns
    -------
    Image
        ``array`` of shape ``(C, F, Y, X)``: C samples per pixel (3 for colour, as RGB), F
        frames (1 for a single-frame file), values after the modality LUT; geometry in array
        order (see the module docstring). ``meta`` holds ``format`` (``"dicom"``), ``modality``,
        ``sop_class``, ``photometric_interpretation``, ``transfer_syntax`` and ``series_uid``.

    Raises
    ------
    ImageReadError
        If the file is not DICOM, holds no image, is a Siemens mosaic, is truncated, needs a
        decoder that is not installed, or its frames are not evenly spaced slices.
    """
    with logged_warnings(str(path)):
        return _read_dataset(open_dicom(path), path)


def _read_dataset(ds: Any, path: Path) -> Image:
    if str(ds.get("SOPClassUID", "")) in SEGMENTATION_SOP_CLASSES:
        return labels_from_dataset(ds, path)
    image_type = [str(v).upper() for v in _as_list(ds.get("ImageType", []))]
    if "MOSAIC" in image_type:
        raise ImageReadError(
            f"{path}: Siemens mosaic (the slices are tiled in one {ds.Rows}x{ds.Columns} frame); "
            "medseg does not unpack mosaics: convert the series with dcm2niix"
        )
    array = decode_pixels(ds, str(path))
    spacing, origin, direction = frame_geometry(ds, array.shape[1], path)
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID", "")
    return Image(
        array=array,
        spacing=spacing,
        origin=origin,
        direction=direction,
        meta={
            "source": str(path),
            "format": "dicom",
            "modality": str(ds.get("Modality", "")),
            "sop_class": str(getattr(ds.get("SOPClassUID"), "name", "")),
            "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")),
            "transfer_syntax": str(syntax),
            "series_uid": str(ds.get("SeriesInstanceUID", "")),
        },
    )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _floats(value: Any) -> np.ndarray | None:
    try:
        return None if value is None else np.asarray([float(v) for v in _as_list(value)])
    except (TypeError, ValueError):
        return None


def _first_item(ds: Any, *keywords: str) -> Any:
    """``ds.K1[0].K2[0]...``, or None where a sequence is missing or empty."""
    for keyword in keywords:
        sequence = ds.get(keyword) if ds is not None else None
        if not sequence:
            return None
        ds = sequence[0]
    return ds


def _plane_tags(ds: Any) -> tuple[Any, Any, Any]:
    """(PixelSpacing, ImageOrientationPatient, SpacingBetweenSlices or SliceThickness holder)."""
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    frame = _first_item(ds, "PerFrameFunctionalGroupsSequence")
    measures = ds
    orientation = ds.get("ImageOrientationPatient")
    for group in (frame, shared):
        if "PixelSpacing" not in measures and (item := _first_item(group, "PixelMeasuresSequence")):
            measures = item
        if orientation is None and (item := _first_item(group, "PlaneOrientationSequence")):
            orientation = item.get("ImageOrientationPatient")
    pixel_spacing = measures.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    return pixel_spacing, orientation, measures


def _frame_positions(ds: Any, frames: int) -> np.ndarray | None:
    """(frames, 3) LPS positions of each frame's first pixel, or None if the file has none."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and len(per_frame) == frames:
        points = [_first_item(group, "PlanePositionSequence") for group in per_frame]
        if all(p is not None and "ImagePositionPatient" in p for p in points):
            return np.asarray([_floats(p.ImagePositionPatient) for p in points])
    return None


def frame_geometry(
    ds: Any, frames: int, path: Path
) -> tuple[tuple[float, ...], tuple[float, ...], np.ndarray]:
    """Spacing, origin (array order, mm) and 3x3 direction of a file's frames (module docstring).

    Raises
    ------
    ImageReadError
        If the frames' positions are not evenly spaced along one line.
    """
    pixel_spacing, orientation, measures = _plane_tags(ds)
    in_plane = _floats(pixel_spacing)
    if in_plane is None or len(in_plane) != 2 or np.any(in_plane <= 0):
        in_plane = np.ones(2)
    cosines = _floats(orientation)
    if (
        cosines is None
        or len(cosines) != 6
        or np.linalg.norm(np.cross(cosines[:3], cosines[3:])) < 0.5
    ):
        cosines = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    row, column = (c / np.linalg.norm(c) for c in (cosines[:3], cosines[3:]))
    normal = np.cross(row, column)
    normal /= np.linalg.norm(normal)
    positions = _frame_positions(ds, frames)
    if positions is None:
        first = _floats(ds.get("ImagePositionPatient"))
        first = first if first is not None and len(first) == 3 else np.zeros(3)
        offsets = _floats(ds.get("GridFrameOffsetVector"))
        if frames > 1 and offsets is not None and len(offsets) == frames:
            positions = first + offsets[:, None] * normal
        else:
            positions = first[None]
    slice_spacing = _slice_spacing(measures, ds)
    if frames > 1 and len(positions) == frames:
        along = positions @ normal
        steps = np.diff(along)
        step = float(np.mean(steps))
        spread = np.abs(positions - positions[0] - np.outer(along - along[0], normal)).max()
        if (
            abs(step) < 1e-6
            or np.abs(steps - step).max() > max(0.01, 0.01 * abs(step))
            or spread > 0.01
        ):
            raise ImageReadError(
                f"{path}: the {frames} frames are not evenly spaced slices of one volume "
                f"(gaps {steps.min():.4g} to {steps.max():.4g} mm along the slice normal); "
                "medseg reads multi-frame files as one evenly spaced stack"
            )
        slice_spacing, normal = abs(step), normal * np.sign(step)
    direction_xyz = np.column_stack([row, column, normal])
    return (
        (slice_spacing, float(in_plane[0]), float(in_plane[1])),
        tuple(float(v) for v in positions[0][::-1]),
        direction_xyz[::-1, ::-1].copy(),
    )


def _slice_spacing(measures: Any, ds: Any) -> float:
    for holder in (measures, ds):
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = _floats(holder.get(keyword))
            if value is not None and len(value) == 1 and value[0] > 0:
                return float(value[0])
    return 1.0
