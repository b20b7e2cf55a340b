"""Sparse annotations: scribbles, clicks and partial slices, with the rest marked ``ignore``.

A sparse label map holds a class value where an annotator marked a voxel and the dataset's
``ignore`` value everywhere else. Training excludes ignored voxels from the loss (no gradient)
and from validation, and evaluation skips them, so a network learns only from what was marked.

The simulators turn a complete label map into what an annotator would draw, deterministically
under a seed:

- :func:`scribble_label`: on every ``every``-th slice along axis 0 (offset drawn from the seed),
  one stroke along the medial line (2D skeleton of the slightly eroded region) of every class
  region on that slice, background included. Classes in ``stroke_classes`` (small lesions) are
  instead marked by one short stroke per 3D connected component, on its largest slice,
  whichever slices the other strokes are on, so that every lesion is marked once.
- :func:`click_label`: one click (the voxel deepest inside, by Euclidean distance) per 3D
  connected component of every class, background included, plus ``extra_clicks`` random clicks
  per component.
- :func:`slice_label`: every ``every``-th slice fully annotated.
- :func:`naive_label`: the naive baseline, a sparse map read as if it were complete (ignored
  voxels become background).

All arrays are spatial label maps, shape (Z, Y, X) (or (Y, X) for scribbles and clicks on 2D
images), integer values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from medseg.data.dataset import Case, Dataset, LabelSpec
from medseg.data.marks import marks_declaration, marks_reach_mm
from medseg.data.nnunet import update_dataset_json
from medseg.errors import DatasetError
from medseg.io import Image, read_image
from medseg.weak._derive import (
    ProgressCallback,
    case_rng,
    derive_dataset,
    load_labelled,
    read_label,
    with_ignore,
)

SparseKind = Literal["scribbles", "clicks", "slices", "naive-scribbles"]


@dataclass(frozen=True, kw_only=True)
class SparseConfig:
    """How sparse labels are simulated from complete ones.

    ``every``: slice step of scribbles and partial slices. ``stroke_classes``: classes marked by
    one short stroke of at most ``stroke_length`` voxels per connected component (lesions).
    ``extra_clicks``: random clicks per component besides the deepest voxel. ``max_stroke``:
    if set, each region's scribble on a slice is cut to the ``max_stroke`` medial-line voxels
    nearest a point drawn on it (shorter strokes, lower coverage).
    """

    every: int = 5
    stroke_classes: tuple[int, ...] = ()
    stroke_length: int = 5
    extra_clicks: int = 0
    max_stroke: int | None = None


def scribble_label(
    label: np.ndarray,
    *,
    ignore: int,
    rng: np.random.Generator,
    config: SparseConfig = SparseConfig(),
) -> np.ndarray:
    """Scribbles on a complete label map; unmarked voxels get ``ignore``.

    Parameters
    ----------
    label : ndarray of int, shape (Z, Y, X) or (Y, X)
        Complete label map; a 2D map is scribbled as one slice.
    ignore : int
        Value of unmarked voxels.
    rng : numpy.random.Generator
        Draws the first scribbled slice.
    config : SparseConfig

    Returns
    -------
    ndarray of int16, shape (Z, Y, X)
    """
    from skimage.morphology import skeletonize

    label = np.asarray(label)
    if label.ndim == 2:  # a 2D image is one slice, always scribbled
        flat = replace(config, every=1)
        return scribble_label(label[None], ignore=ignore, rng=rng, config=flat)[0]
    _check_ignore(label, ignore)
    out = np.full(label.shape, ignore, dtype=np.int16)
    strokes = set(config.stroke_classes)
    offset = int(rng.integers(config.every))
    for z in range(offset, label.shape[0], config.every):
        plane = label[z]
        for value in np.unique(plane):
            if int(value) in strokes:
                continue
            region = plane == value
            eroded = ndimage.binary_erosion(region)
            line = np.argwhere(skeletonize(eroded if eroded.any() else region))
            if config.max_stroke is not None and len(line) > config.max_stroke:
                anchor = line[int(rng.integers(len(line)))]
                near = np.argsort(((line - anchor) ** 2).sum(axis=1), kind="stable")
                line = line[near[: config.max_stroke]]
            out[z][tuple(line.T)] = value
    for value in sorted(strokes):
        _mark_components(label == value, out, value, config.stroke_length)
    return out


def click_label(
    label: np.ndarray,
    *,
    ignore: int,
    rng: np.random.Generator,
    config: SparseConfig = SparseConfig(),
) -> np.ndarray:
    """One click per connected component of every class (and ``extra_clicks`` random ones).

    Parameters and returns as :func:`scribble_label`.
    """
    label = np.asarray(label)
    _check_ignore(label, ignore)
    out = np.full(label.shape, ignore, dtype=np.int16)
    for value in np.unique(label):
        components, _ = ndimage.label(label == value, np.ones((3,) * label.ndim, bool))
        for index, where in enumerate(ndimage.find_objects(components), start=1):
            mask = components[where] == index
            depth = ndimage.distance_transform_edt(np.pad(mask, 1))[(slice(1, -1),) * mask.ndim]
            points = [np.unravel_index(int(np.argmax(depth)), mask.shape)]
            inside = np.argwhere(mask)
            if config.extra_clicks:
                picks = rng.choice(len(inside), size=min(config.extra_clicks, len(inside)))
                points.extend(tuple(inside[p]) for p in picks)
            for point in points:
                full = tuple(int(p) + s.start for p, s in zip(point, where, strict=True))
                out[full] = value
    return out


def slice_label(
    label: np.ndarray,
    *,
    ignore: int,
    rng: np.random.Generator,
    config: SparseConfig = SparseConfig(),
) -> np.ndarray:
    """Every ``config.every``-th slice along axis 0 complete, the others ``ignore`` (3D only)."""
    label = np.asarray(label)
    if label.ndim != 3:
        raise DatasetError(f"partial slices need 3D label maps, got shape {label.shape}")
    _check_ignore(label, ignore)
    out = np.full(label.shape, ignore, dtype=np.int16)
    offset = int(rng.integers(config.every))
    out[offset :: config.every] = label[offset :: config.every]
    return out


def naive_label(sparse: np.ndarray, ignore: int) -> np.ndarray:
    """The naive baseline: a sparse label map used as if complete (``ignore`` -> background)."""
    sparse = np.asarray(sparse)
    return np.where(sparse == ignore, 0, sparse).astype(np.int16)


def annotated_fraction(sparse: np.ndarray, ignore: int) -> float:
    """Fraction of voxels that carry a class (not ``ignore``)."""
    sparse = np.asarray(sparse)
    return float(np.count_nonzero(sparse != ignore)) / max(sparse.size, 1)


def check_sparse_values(array: np.ndarray, labels: LabelSpec, path: Path | str) -> None:
    """Raise :class:`DatasetError` if a sparse label file holds values outside the classes.

    Parameters
    ----------
    array : ndarray of int
        The label map as read.
    labels : LabelSpec
        The dataset's labels (ignore included).
    path : path
        File named in the message.
    """
    values = {int(v) for v in np.unique(array)}
    unknown = sorted(values - labels.allowed_values)
    if unknown:
        raise DatasetError(
            f"{path}: label values {unknown} are not classes of the dataset "
            f"(allowed: {sorted(labels.allowed_values)}, ignore = {labels.ignore}); mark "
            "unlabelled voxels with the ignore value and classes with their dataset.json values"
        )


def sparse_ignore(dataset: Dataset) -> int:
    """The ignore value of a sparsely labelled dataset.

    Raises
    ------
    DatasetError
        ``dataset.json`` declares no ignore label, so no voxel is marked as unlabelled.
    """
    if dataset.labels.ignore is None:
        raise DatasetError(
            f"{dataset.root}: no ignore label: dataset.json declares no 'ignore' label; sparse "
            "labels need one (the highest label value) for the unmarked voxels"
        )
    return dataset.labels.ignore


def sparse_coverage(dataset: Dataset | str | Path) -> dict[str, float]:
    """Fraction of annotated voxels per case of a sparse dataset, values checked.

    Returns
    -------
    dict of str to float
        Case id -> annotated fraction, plus ``"mean"``.

    Raises
    ------
    DatasetError
        A label file holds a value that is neither a class nor the ignore label, or the dataset
        has no ignore label.
    """
    loaded = load_labelled(dataset)
    ignore = sparse_ignore(loaded)
    out: dict[str, float] = {}
    for case in loaded.labelled:
        assert case.label_path is not None
        array = read_image(case.label_path).array
        check_sparse_values(array, loaded.labels, case.label_path)
        out[case.case_id] = annotated_fraction(array, ignore)
    out["mean"] = float(np.mean(list(out.values())))
    return out


def make_sparse_dataset(
    dataset: Dataset | str | Path,
    out: str | Path,
    *,
    kind: SparseKind = "scribbles",
    config: SparseConfig = SparseConfig(),
    seed: int = 0,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Write a copy of a labelled dataset with simulated sparse labels.

    Parameters
    ----------
    dataset : Dataset or path
        Complete labels (nnU-Net layout).
    out : path
        New dataset folder (absent or empty).
    kind : {"scribbles", "clicks", "slices", "naive-scribbles"}
        ``naive-scribbles`` writes the scribbles with unmarked voxels as background and no
        ignore label: the baseline that treats weak labels as complete.
    config : SparseConfig
    seed : int
        Case ``i`` draws from ``(seed, i)``: the same seed writes identical labels.
    on_progress : callable, optional
        ``on_progress(done, total)`` per case.

    Returns
    -------
    Path
        ``out``; its ``dataset.json`` has an ``ignore`` label (except for the naive baseline),
        a ``weak_labels`` entry with the kind, settings and mean annotated fraction, and for
        scribbles with ``stroke_classes`` an ``every_object_marked`` declaration: every object
        of those classes got a stroke, and the reach is the largest distance (mm) of one of
        their voxels from the nearest stroke of the class, measured on the complete labels
        (:mod:`medseg.data.marks`).
    """
    source = load_labelled(dataset)
    if (
        config.every < 1
        or config.stroke_length < 1
        or config.extra_clicks < 0
        or (config.max_stroke is not None and config.max_stroke < 1)
    ):
        raise DatasetError(
            "sparse settings must be every >= 1, stroke_length >= 1, extra_clicks >= 0, "
            f"max_stroke >= 1; got {config}"
        )
    spec = with_ignore(source.labels)
    assert spec.ignore is not None
    simulate = {"clicks": click_label, "slices": slice_label}.get(kind, scribble_label)
    fractions: list[float] = []
    stroked = config.stroke_classes if kind == "scribbles" else ()
    reach = dict.fromkeys(stroked, 0.0)

    def derive(index: int, case: Case) -> Image:
        label = read_label(case)
        sparse = simulate(
            label.array[0], ignore=spec.ignore, rng=case_rng(seed, index), config=config
        )
        fractions.append(annotated_fraction(sparse, spec.ignore))
        spacing = label.spacing[-sparse.ndim :]
        for value in stroked:
            reach[value] = max(reach[value], marks_reach_mm(label.array[0], sparse, value, spacing))
        return label.with_array(
            (naive_label(sparse, spec.ignore) if kind == "naive-scribbles" else sparse)[None]
        )

    labels = source.labels if kind == "naive-scribbles" else spec
    description = {
        "max_stroke": config.max_stroke,
        "kind": kind,
        "seed": seed,
        "every": config.every,
        "stroke_classes": list(config.stroke_classes),
        "stroke_length": config.stroke_length,
        "extra_clicks": config.extra_clicks,
    }
    path = derive_dataset(
        source, Path(out), derive, labels=labels, description=description, on_progress=on_progress
    )
    names = {v: n for n, v in source.labels.labels.items()}
    declared = {names[v]: r for v, r in reach.items() if r > 0}
    fraction = round(float(np.mean(fractions)), 6)
    changes = {"weak_labels": {**description, "annotated_fraction": fraction}}
    update_dataset_json(path, {**changes, **(marks_declaration(declared) if declared else {})})
    return path


def _check_ignore(label: np.ndarray, ignore: int) -> None:
    if np.any(label == ignore):
        raise DatasetError(
            f"the complete label map already contains the ignore value {ignore}; "
            "simulate sparse labels from complete labels only"
        )


def _mark_components(mask: np.ndarray, out: np.ndarray, value: int, length: int) -> None:
    """One short stroke per 26-connected component of ``mask``, on its largest slice."""
    from skimage.morphology import skeletonize

    components, _ = ndimage.label(mask, np.ones((3,) * mask.ndim, bool))
    for index, where in enumerate(ndimage.find_objects(components), start=1):
        blob = components[where] == index
        z = int(np.argmax(blob.reshape(blob.shape[0], -1).sum(axis=1)))
        section = blob[z]
        line = np.argwhere(skeletonize(section))
        if len(line) == 0:
            line = np.argwhere(section)
        centre = np.argwhere(section).mean(axis=0)
        nearest = line[np.argsort(((line - centre) ** 2).sum(axis=1), kind="stable")[:length]]
        for y, x in nearest:
            out[where[0].start + z, where[1].start + y, where[2].start + x] = value
