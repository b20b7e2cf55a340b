"""Label names, channel names, modality and training fingerprint for a report, from files.

:func:`read_label_info` reads an nnU-Net ``dataset.json`` (``--dataset-json``) or a medseg model
folder (``--model``: its ``dataset.json`` or ``plan.json`` gives the labels and channels, its
``fingerprint.json`` the training volumes for the range flag).

:func:`segmentation_on_image` turns a DICOM Segmentation read as a segmentation into a label map
on the image's grid whose values are the label values of those names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg._typing import PathLikeStr
from medseg.data.nnunet import parse_labels
from medseg.errors import DatasetError, GeometryError
from medseg.io import Image, place_on_grid, read_image
from medseg.io.dicom_seg import is_dicom_seg, read_dicom_seg
from medseg.report.measure import label_boxes


@dataclass(frozen=True, kw_only=True)
class LabelInfo:
    """Foreground label names by value, channel names by index, and an optional fingerprint."""

    names: dict[int, str]
    channel_names: dict[int, str] = field(default_factory=dict)
    fingerprint: dict[str, Any] | None = None


def names_from_labels(
    labels: dict[str, Any], regions_order: Any = None, *, source: str
) -> dict[int, str]:
    """Value -> name of every foreground label (or painted region) of a ``labels`` mapping."""
    spec = parse_labels(labels, regions_order, source=source)
    if spec.uses_regions:
        return {int(v): name for name, v in zip(spec.regions, spec.region_order, strict=True)}
    return {int(v): name for name, v in spec.foreground.items()}


def read_label_info(path: Path) -> LabelInfo:
    """Read label and channel names from a ``dataset.json`` or a model folder.

    Raises
    ------
    DatasetError
        Missing or malformed file, or no ``labels`` in it.
    """
    path = Path(path)
    fingerprint = None
    if path.is_dir():
        fp = path / "fingerprint.json"
        fingerprint = _read(fp) if fp.is_file() else None
        candidates = [path / "dataset.json", path / "plan.json"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DatasetError(f"{path}: a model folder needs dataset.json or plan.json")
        path = found
    meta = _read(path)
    if "labels" not in meta:
        raise DatasetError(f"{path}: no 'labels' entry; pass the dataset.json of the model")
    order = meta.get("regions_class_order", meta.get("region_order"))
    names = names_from_labels(meta["labels"], order or None, source=str(path))
    channels = meta.get("channel_names") or meta.get("modality") or {}
    return LabelInfo(
        names=names,
        channel_names={int(k): str(v) for k, v in channels.items()},
        fingerprint=fingerprint,
    )


def read_segmentation(path: PathLikeStr) -> Image:
    """Read a segmentation file; a DICOM-SEG whose segments overlap keeps the highest number.

    Segments of a DICOM Segmentation may overlap (a tumour inside its organ's segment); the
    report counts each such voxel once, for the highest-numbered segment, and raises the
    ``overlapping_segments`` flag (``meta["segments_overlap"]``).
    """
    if is_dicom_seg(path):
        return read_dicom_seg(path, overlaps="highest")
    return read_image(path)


def segmentation_on_image(
    segmentation: Image,
    image: Image,
    info: LabelInfo | None,
    *,
    names: tuple[str, str],
) -> tuple[Image, LabelInfo | None]:
    """A DICOM-SEG's label map placed on the image's grid, with label values by segment name.

    Other segmentations are returned as they are. A SEG's values are segment numbers
    (``meta["segment_labels"]`` names them); it may store only the slices holding a segment, so
    it is padded onto the image's grid (:func:`~medseg.io.image.place_on_grid`). With label
    names (``info``) each segment takes the value of the label of the same name (case-insensitive,
    DICOM keeps 64 characters); without them the segment labels become the names.

    Parameters
    ----------
    segmentation, image : Image
        The segmentation as read and its ``(C, Z, Y, X)`` image.
    info : LabelInfo or None
        Label names from ``--dataset-json`` / ``--model``.
    names : (str, str)
        File names of the segmentation and the image, for error messages.

    Raises
    ------
    GeometryError
        The SEG's slices do not lie on the image's grid.
    DatasetError
        A segment label that is none of the label names.
    """
    segments: dict[int, str] | None = segmentation.meta.get("segment_labels")
    if segments is None:
        return segmentation, info
    seg_name, image_name = names
    try:
        placed = place_on_grid(segmentation, image)
    except GeometryError as err:
        raise GeometryError(
            f"{seg_name} (DICOM Segmentation) does not lie on the voxel grid of {image_name}: "
            f"{err}; give the series the segmentation was made on"
        ) from None
    if info is None:
        return placed, LabelInfo(names={int(n): str(label) for n, label in segments.items()})
    by_name = {name[:64].strip().lower(): value for value, name in info.names.items()}
    values = {}
    for number, label in segments.items():
        value = by_name.get(str(label).strip().lower())
        if value is None:
            known = ", ".join(info.names.values())
            raise DatasetError(
                f"{seg_name}: segment {number} {label!r} is none of the label names ({known}); "
                "pass the dataset.json the segmentation was made with, or none to use the "
                "segment labels"
            )
        values[int(number)] = value
    if all(number == value for number, value in values.items()):
        return placed, info
    table = np.zeros(max(values) + 1, dtype=np.min_scalar_type(max(values.values())))
    for number, value in values.items():
        table[number] = value
    return placed.with_array(table[placed.array]), info


def default_names(segmentation: Image) -> dict[int, str]:
    """``label_<v>`` for every non-zero value present, when no label names are given."""
    arr = segmentation.array
    if np.issubdtype(arr.dtype, np.integer) and (arr.size == 0 or arr.min() >= 0):
        values = list(label_boxes(arr[0] if arr.ndim == 4 else arr))  # one pass, no sort
    else:
        values = [v for v in np.unique(arr) if v > 0 and float(v).is_integer()]
    return {int(v): f"label_{int(v)}" for v in values}


def modality_of(image: Image, channel_names: dict[int, str]) -> str | None:
    """``"CT"`` when the DICOM header or the first channel's name says so, else that name."""
    modality = str(image.meta.get("modality") or channel_names.get(0) or "").strip()
    return modality or None


def case_id_from(path: Path) -> str:
    """Case ID from an image file name: extensions and an nnU-Net ``_0000`` suffix removed."""
    name = path.name
    for ending in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(ending):
            name = name[: -len(ending)]
            break
    if len(name) > 5 and name[-5] == "_" and name[-4:].isdigit():
        name = name[:-5]
    return name


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: not found") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    return data
