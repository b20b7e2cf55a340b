"""Dataset fingerprint: the statistics the planning rules read (as nnU-Net's; docs/plan.md).

Per case: spacing, shape, shape after cropping to the nonzero region and the fraction of voxels the
crop keeps. Per channel: foreground intensity statistics from a deterministic sample. Per label:
voxel counts and connected-component statistics (how "lesion-like" a class is).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cc3d
import numpy as np
import numpy.typing as npt

from medseg import __version__
from medseg._config import from_jsonable, read_json, write_json
from medseg.data.dataset import Dataset, LabelSpec
from medseg.data.marks import every_object_marked
from medseg.errors import ConfigError, DatasetError
from medseg.plan.cases import (
    as_3d,
    bbox_of,
    crop_slices,
    input_signature,
    nonzero_mask,
    read_case,
)

logger = logging.getLogger(__name__)

SEED = 1234
NUM_INTENSITY_SAMPLES = 10_000_000
"""Foreground voxels sampled per channel over the whole dataset (nnU-Net's ``10e7``)."""


@dataclass(frozen=True, kw_only=True)
class ChannelIntensity:
    """Foreground intensity statistics of one channel (raw units, e.g. HU for CT)."""

    mean: float
    std: float
    median: float
    min: float
    max: float
    percentile_00_5: float
    percentile_99_5: float


@dataclass(frozen=True, kw_only=True)
class ComponentStats:
    """Connected components (26-connectivity) of one label value, over the cases that hold it."""

    mean_count: float
    median_size_voxels: float


@dataclass(frozen=True, kw_only=True)
class Fingerprint:
    """Dataset statistics for planning. Spatial tuples are in array order (z, y, x), spacing in mm.

    ``labels``, ``regions``, ``region_order`` and ``ignore_label`` copy the dataset's
    :class:`LabelSpec`; ``every_object_marked`` its declaration of sparse classes whose every
    object is marked (label value -> reach in mm, :mod:`medseg.data.marks`). ``spacings``,
    ``shapes`` and ``shapes_after_crop`` have one entry per labelled case, with 2 values for 2D
    data and 3 for 3D data. ``class_voxels`` counts voxels per label value over all labelled
    cases. ``source_hash`` identifies the input files (paths, sizes, modification times) and
    the ``every_object_marked`` declaration.
    """

    medseg_version: str = __version__
    dataset_name: str
    case_ids: tuple[str, ...]
    channel_names: dict[int, str]
    labels: dict[str, int]
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    region_order: tuple[int, ...] = ()
    ignore_label: int | None = None
    every_object_marked: dict[int, float] = field(default_factory=dict)
    spacings: tuple[tuple[float, ...], ...]
    shapes: tuple[tuple[int, ...], ...]
    shapes_after_crop: tuple[tuple[int, ...], ...]
    crop_fractions: tuple[float, ...]
    intensity: tuple[ChannelIntensity, ...]
    class_voxels: dict[int, int]
    components: dict[int, ComponentStats]
    source_hash: str

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.spacings[0])

    @property
    def median_spacing(self) -> tuple[float, ...]:
        return tuple(float(v) for v in np.median(np.asarray(self.spacings), axis=0))

    @property
    def label_spec(self) -> LabelSpec:
        return LabelSpec(
            labels=dict(self.labels),
            regions=dict(self.regions),
            region_order=self.region_order,
            ignore=self.ignore_label,
        )

    @property
    def median_crop_fraction(self) -> float:
        return float(np.median(self.crop_fractions))

    @property
    def class_frequencies(self) -> dict[int, float]:
        """Fraction of all labelled voxels taken by each label value."""
        total = sum(self.class_voxels.values())
        return {k: v / total for k, v in self.class_voxels.items()} if total else {}


def dataset_signature(dataset: Dataset) -> str:
    """A hash of every labelled case's input files (path, mtime, size), the channel names and
    the ``every_object_marked`` declaration (only when there is one, so hashes of datasets
    without it stay as they were)."""
    payload: dict = {
        "cases": [[c.case_id, input_signature(c)] for c in dataset.labelled],
        "channels": {str(k): v for k, v in dataset.channel_names.items()},
    }
    marked = every_object_marked(dataset)
    if marked:
        payload["every_object_marked"] = {str(k): v for k, v in marked.items()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def extract_fingerprint(
    dataset: Dataset,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    num_samples: int = NUM_INTENSITY_SAMPLES,
) -> Fingerprint:
    """Measure ``dataset``'s labelled cases.

    Parameters
    ----------
    dataset : Dataset
        Cases with labels; unlabelled cases are skipped.
    on_progress : callable, optional
        Called as ``on_progress(done, total)`` after each case.
    num_samples : int
        Foreground voxels sampled per channel over the dataset, split evenly over the cases and
        drawn with replacement (seed 1234, as nnU-Net).

    Returns
    -------
    Fingerprint

    Raises
    ------
    DatasetError
        If the dataset has no labelled case or its cases mix 2D and 3D images.
    """
    cases = dataset.labelled
    if not cases:
        raise DatasetError(f"{dataset.root}: no labelled cases to fingerprint")
    per_case = max(1, num_samples // len(cases))
    spacings, shapes, cropped, fractions = [], [], [], []
    samples: list[npt.NDArray[np.float32]] = []
    voxels: dict[int, int] = {}
    counts: dict[int, list[int]] = {}
    sizes: dict[int, list[int]] = {}
    for done, case in enumerate(cases, start=1):
        image, label = read_case(case, dataset.labels.allowed_values)
        if spacings and len(image.spacing) != len(spacings[0]):
            raise DatasetError(
                f"{case.image_paths[0]}: {image.ndim}D image in a dataset of "
                f"{len(spacings[0])}D images"
            )
        array = as_3d(image.array, image.ndim)
        label3 = as_3d(label[None], image.ndim)[0]
        box = bbox_of(nonzero_mask(array))
        sl = crop_slices(box)
        array, cropped_label = array[(slice(None), *sl)], label3[sl]
        spacings.append(image.spacing)
        shapes.append(image.spatial_shape)
        cropped.append(tuple(int(s) for s in array.shape[-image.ndim :]))
        fractions.append(float(np.prod(cropped[-1]) / np.prod(image.spatial_shape)))
        samples.append(_sample_foreground(array, cropped_label > 0, per_case))
        _count_classes(label3, voxels, counts, sizes)
        if on_progress is not None:
            on_progress(done, len(cases))
    pooled = np.concatenate(samples, axis=1)
    return Fingerprint(
        dataset_name=dataset.name,
        case_ids=tuple(c.case_id for c in cases),
        channel_names=dict(dataset.channel_names),
        labels=dict(dataset.labels.labels),
        regions=dict(dataset.labels.regions),
        region_order=tuple(dataset.labels.region_order),
        ignore_label=dataset.labels.ignore,
        every_object_marked=every_object_marked(dataset),
        spacings=tuple(spacings),
        shapes=tuple(shapes),
        shapes_after_crop=tuple(cropped),
        crop_fractions=tuple(fractions),
        intensity=tuple(_intensity(channel) for channel in pooled),
        class_voxels=dict(sorted(voxels.items())),
        components={
            v: ComponentStats(
                mean_count=float(np.mean(counts[v])),
                median_size_voxels=float(np.median(sizes[v])) if sizes[v] else 0.0,
            )
            for v in sorted(counts)
        },
        source_hash=dataset_signature(dataset),
    )


def load_or_extract_fingerprint(
    dataset: Dataset,
    cache_path: Path,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> Fingerprint:
    """Read ``cache_path`` if it describes the current input files, else extract and write it."""
    cache_path = Path(cache_path)
    if cache_path.exists():
        try:
            cached = from_jsonable(Fingerprint, read_json(cache_path), source=str(cache_path))
        except ConfigError as err:
            logger.warning("ignoring unreadable fingerprint cache: %s", err)
        else:
            if cached.source_hash == dataset_signature(dataset):
                return cached
            logger.info("%s: input files changed, extracting the fingerprint again", cache_path)
    fingerprint = extract_fingerprint(dataset, on_progress=on_progress)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(fingerprint, cache_path)
    return fingerprint


def _sample_foreground(
    array: npt.NDArray, foreground: npt.NDArray[np.bool_], n: int
) -> npt.NDArray[np.float32]:
    """``n`` foreground voxels per channel drawn with replacement; shape (C, n) or (C, 0)."""
    rng = np.random.default_rng(SEED)
    flat = np.flatnonzero(foreground)
    if flat.size == 0:
        return np.zeros((array.shape[0], 0), np.float32)
    picks = rng.choice(flat, size=n, replace=True)
    return array.reshape(array.shape[0], -1)[:, picks].astype(np.float32)


def _intensity(values: npt.NDArray[np.float32]) -> ChannelIntensity:
    if values.size == 0:
        return ChannelIntensity(
            mean=0.0,
            std=1.0,
            median=0.0,
            min=0.0,
            max=0.0,
            percentile_00_5=0.0,
            percentile_99_5=0.0,
        )
    v = values.astype(np.float64)
    low, median, high = np.percentile(v, [0.5, 50.0, 99.5])
    return ChannelIntensity(
        mean=float(v.mean()),
        std=float(v.std()),
        median=float(median),
        min=float(v.min()),
        max=float(v.max()),
        percentile_00_5=float(low),
        percentile_99_5=float(high),
    )


def _count_classes(
    label: npt.NDArray[np.integer],
    voxels: dict[int, int],
    counts: dict[int, list[int]],
    sizes: dict[int, list[int]],
) -> None:
    values, n = np.unique(label, return_counts=True)
    for value, count in zip(values.tolist(), n.tolist(), strict=True):
        voxels[value] = voxels.get(value, 0) + count
        if value == 0:
            continue
        mask = np.ascontiguousarray(label == value, dtype=np.uint8)  # cc3d: see evaluate.detection
        components, k = cc3d.connected_components(mask, connectivity=26, return_N=True)
        counts.setdefault(value, []).append(int(k))
        sizes.setdefault(value, []).extend(np.bincount(components.ravel())[1:].tolist())
