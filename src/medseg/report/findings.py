"""Compute every measurement of a case once: :func:`compute_findings` -> :class:`Findings`.

Inputs are :class:`~medseg.io.Image` objects already read and checked against each other
(:mod:`medseg.report.inputs` does that for files). Everything else in the report (JSON, HTML,
PDF, the plain-language summary) is rendered from the :class:`Findings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import DatasetError, GeometryError
from medseg.io import Image, geometry_differences
from medseg.io.describe import orientation_code
from medseg.report.lesions import LesionTable, find_components, measure_lesions
from medseg.report.longitudinal import Change, compare_with_prior
from medseg.report.measure import Box, Structure, label_boxes, measure_structures
from medseg.report.quality import Flag, overlap_flag, quality_flags, training_volumes_ml

LESION_WORDS = ("lesion", "tumor", "tumour", "metasta", "nodule", "cancer", "carcinoma", "mass")
"""A label whose name contains one of these is a lesion class unless lesion classes are given."""


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """Thresholds of the quality flags (see :mod:`medseg.report.quality`)."""

    volume_factor: float = 3.0
    uncertainty_threshold: float = 0.5


@dataclass(frozen=True, kw_only=True)
class LesionBurden:
    """Count and total volume (ml) of the lesions of one lesion class."""

    label: int
    name: str
    count: int
    total_volume_ml: float


@dataclass(frozen=True, kw_only=True)
class Findings:
    """All measurements of one case. Coordinates are patient LPS (x, y, z) mm.

    ``shape`` and ``spacing_mm`` are in array order (z, y, x); ``orientation`` is the
    three-letter code of the x, y, z array axes (e.g. ``"LPS"``).
    """

    case_id: str
    sources: dict[str, str]
    modality: str | None
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    orientation: str
    structures: tuple[Structure, ...]
    lesions: LesionTable
    burden: tuple[LesionBurden, ...]
    change: Change | None
    flags: tuple[Flag, ...]

    @property
    def found_anything(self) -> bool:
        return any(s.voxels for s in self.structures)


@dataclass(frozen=True)
class PriorScan:
    """The earlier time point: image, segmentation and their file names (for messages)."""

    image: Image
    segmentation: Image


def lesion_values_from_names(
    names: dict[int, str], lesion_labels: tuple[str | int, ...] | None
) -> frozenset[int]:
    """Label values of the lesion classes: the given names/values, else by :data:`LESION_WORDS`.

    Raises
    ------
    DatasetError
        A given lesion label that is not one of ``names``.
    """
    if lesion_labels is None:
        return frozenset(
            v for v, n in names.items() if any(word in n.lower() for word in LESION_WORDS)
        )
    by_name = {n: v for v, n in names.items()}
    values = set()
    for item in lesion_labels:
        value = by_name.get(str(item))
        if value is None and str(item).isdigit() and int(item) in names:
            value = int(item)
        if value is None:
            raise DatasetError(
                f"lesion label {item!r} is not a label of this segmentation "
                f"(labels: {', '.join(f'{v}={n}' for v, n in sorted(names.items()))})"
            )
        values.add(value)
    return frozenset(values)


def compute_findings(
    image: Image,
    segmentation: Image,
    *,
    names: dict[int, str],
    lesion_labels: tuple[str | int, ...] | None = None,
    channel_names: dict[int, str] | None = None,
    modality: str | None = None,
    prior: PriorScan | None = None,
    uncertainty: Image | None = None,
    fingerprint: dict[str, Any] | None = None,
    options: ReportOptions | None = None,
    case_id: str = "case",
    sources: dict[str, str] | None = None,
) -> Findings:
    """Measure structures and lesions, compare with a prior, and flag doubtful findings.

    Parameters
    ----------
    image : Image
        ``(C, Z, Y, X)`` intensities (CT in HU when ``modality`` is ``"CT"``).
    segmentation : Image
        ``(1, Z, Y, X)`` integer label map on the image's voxel grid.
    names : dict of int to str
        Label value -> name for every foreground label that may occur.
    lesion_labels : tuple of str or int, optional
        Lesion classes by name or value; default: names containing a :data:`LESION_WORDS` word.
    channel_names : dict of int to str, optional
        Names of the image channels in the intensity statistics.
    modality : str, optional
        ``"CT"`` marks intensities as Hounsfield units.
    prior : PriorScan, optional
        Earlier image and segmentation, same labels; matched in physical space.
    uncertainty : Image, optional
        ``(1, Z, Y, X)`` voxel-wise uncertainty in [0, 1] on the image's grid.
    fingerprint : dict, optional
        The model's ``fingerprint.json`` (training volumes for the range flag).
    options : ReportOptions, optional
    case_id : str
    sources : dict of str to str, optional
        File names by role (image, segmentation, ...), recorded in the report.

    Returns
    -------
    Findings

    Raises
    ------
    GeometryError
        A non-3D image, or segmentation/uncertainty on another grid.
    DatasetError
        Label values not in ``names``, negative or non-integer labels.
    """
    options = options or ReportOptions()
    sources = dict(sources or {})
    labels, boxes = label_array(segmentation, names, sources.get("segmentation", "segmentation"))
    require_same_grid(image, segmentation, sources, "image", "segmentation")
    unc = None
    if uncertainty is not None:
        require_same_grid(image, uncertainty, sources, "image", "uncertainty")
        unc = uncertainty.array[0]
    lesion_values = lesion_values_from_names(names, lesion_labels)
    structures = measure_structures(
        image,
        labels,
        names,
        boxes,
        lesion_values=lesion_values,
        channel_names=channel_names or {},
        hounsfield=(modality or "").upper() == "CT",
        uncertainty=unc,
    )
    components = find_components(labels, boxes, lesion_values)
    table = measure_lesions(image, labels, components, names, lesion_values, uncertainty=unc)
    change = None
    if prior is not None:
        change = _compare(image, components, table, prior, names, lesion_values, sources)
    flags = quality_flags(
        structures,
        table,
        training_ml=training_volumes_ml(fingerprint or {}),
        volume_factor=options.volume_factor,
        uncertainty_threshold=options.uncertainty_threshold,
    )
    if segmentation.meta.get("segments_overlap"):
        flags.append(overlap_flag(sources.get("segmentation", "segmentation")))
    burden = tuple(
        LesionBurden(
            label=v,
            name=names[v],
            count=len(table.select(label=v)),
            total_volume_ml=table.select(label=v).total_volume_ml,
        )
        for v in sorted(lesion_values)
    )
    return Findings(
        case_id=case_id,
        sources=sources,
        modality=modality,
        shape=image.spatial_shape,  # type: ignore[arg-type]
        spacing_mm=image.spacing,  # type: ignore[arg-type]
        orientation=orientation_code(image),
        structures=tuple(structures),
        lesions=table,
        burden=burden,
        change=change,
        flags=tuple(flags),
    )


def label_array(
    segmentation: Image, names: dict[int, str], source: str
) -> tuple[npt.NDArray[Any], dict[int, Box]]:
    """The ``(Z, Y, X)`` label array as an unsigned integer type, checked against ``names``,
    and the bounding box of each label value present (:func:`label_boxes`)."""
    if segmentation.ndim != 3:
        raise GeometryError(f"{source}: the report needs a 3D segmentation, got 2D")
    if segmentation.num_channels != 1:
        raise DatasetError(
            f"{source}: a segmentation has one channel, got {segmentation.num_channels}"
        )
    arr = segmentation.array[0]
    if not np.issubdtype(arr.dtype, np.integer) and not np.array_equal(arr, np.round(arr)):
        raise DatasetError(f"{source}: label values must be integers (found fractions)")
    if arr.size and arr.min() < 0:
        raise DatasetError(f"{source}: negative label value {arr.min()}")
    top = int(arr.max()) if arr.size else 0
    dtype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32
    labels = arr.astype(dtype, copy=False)
    boxes = label_boxes(labels)
    unknown = sorted(set(boxes) - set(names))
    if unknown:
        raise DatasetError(
            f"{source}: label value(s) {', '.join(map(str, unknown))} are not in the label names "
            f"({', '.join(f'{v}={n}' for v, n in sorted(names.items()))}); pass the dataset.json "
            "the model was trained with (--dataset-json or --model)"
        )
    return labels, boxes


def require_same_grid(
    a: Image, b: Image, sources: dict[str, str], role_a: str, role_b: str
) -> None:
    """Raise :class:`GeometryError` naming both files when two images are on different grids."""
    problems = geometry_differences(a, b)
    if problems:
        raise GeometryError(
            f"{sources.get(role_b, role_b)} and {sources.get(role_a, role_a)} are on different "
            f"voxel grids ({'; '.join(problems)}); the {role_b} must be computed on this {role_a}"
        )


def _compare(
    image: Image,
    components: list[Any],
    table: LesionTable,
    prior: PriorScan,
    names: dict[int, str],
    lesion_values: frozenset[int],
    sources: dict[str, str],
) -> Change:
    prior_labels, prior_boxes = label_array(
        prior.segmentation, names, sources.get("prior_segmentation", "prior segmentation")
    )
    require_same_grid(prior.image, prior.segmentation, sources, "prior_image", "prior_segmentation")
    here, there = orientation_code(image), orientation_code(prior.image)
    if here != there:
        raise GeometryError(
            f"{sources.get('prior_image', 'prior image')} is stored in orientation {there} but "
            f"{sources.get('image', 'the image')} in {here}; without registration the lesions "
            f"cannot be matched reliably. Reorient the prior to {here} (e.g. SimpleITK "
            "DICOMOrient) or register it to the current scan first"
        )
    prior_components = find_components(prior_labels, prior_boxes, lesion_values)
    prior_table = measure_lesions(prior.image, prior_labels, prior_components, names, lesion_values)
    return compare_with_prior(image, components, table, prior.image, prior_components, prior_table)
