"""Write a new nnU-Net-format dataset whose training labels are derived from another's.

Used by the weak-label tools (scribbles, clicks, corrupted labels, box pseudo-masks, rater
consensus): the images, any rater files and any test split are copied unchanged, every training
label map is replaced by ``derive(index, case)``, and ``dataset.json`` is copied with its labels
updated (an ``ignore`` label added for sparse annotations) and a ``weak_labels`` entry saying
how the labels were made.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medseg._atomic import atomic_path
from medseg.data import load_dataset
from medseg.data.dataset import Case, Dataset, LabelSpec
from medseg.data.nnunet import write_dataset_json
from medseg.errors import DatasetError
from medseg.io import Image, read_image, write_image

Derive = Callable[[int, Case], Image]
ProgressCallback = Callable[[int, int], None]


def case_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of case ``index`` under ``seed``: the same pair gives the same draws."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def load_labelled(dataset: Dataset | str | Path) -> Dataset:
    """A dataset with at least one labelled case, loaded if given as a path."""
    loaded = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if not loaded.labelled:
        raise DatasetError(f"{loaded.root}: no labelled training case to derive labels from")
    return loaded


def derive_dataset(
    source: Dataset,
    out: Path,
    derive: Derive,
    *,
    cases: tuple[Case, ...] | None = None,
    labels: LabelSpec,
    description: Mapping[str, Any],
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Copy ``source`` to ``out`` with every training label map replaced by ``derive``.

    Parameters
    ----------
    source : Dataset
        The clean dataset (nnU-Net layout on disk).
    out : Path
        New dataset folder; must be absent or empty.
    derive : callable
        ``derive(index, case) -> label image`` (one channel, integer values, the case's grid).
    cases : tuple of Case, optional
        Cases to write (default: the labelled ones).
    labels : LabelSpec
        Labels of the new dataset (e.g. the source's with an ``ignore`` label added).
    description : mapping
        Stored as ``weak_labels`` in the new ``dataset.json`` (how the labels were derived).
    on_progress : callable, optional
        ``on_progress(done, total)`` after each labelled case.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out}: already exists and is not an empty folder; choose a new one")
    ending = source.file_ending
    cases = source.labelled if cases is None else cases
    for folder in ("imagesTr", "labelsTr"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for index, case in enumerate(cases):
        for path in case.image_paths:
            _copy(path, out / "imagesTr" / path.name)
        for path in case.rater_paths:
            _copy(path, out / "labelsTr" / path.name)
        label = derive(index, case)
        label = label.with_array(np.asarray(label.array).astype(np.int16))
        write_image(label, out / "labelsTr" / f"{case.case_id}{ending}")
        if on_progress is not None:
            on_progress(index + 1, len(cases))
    for split in ("imagesTs", "labelsTs"):
        if (source.root / split).is_dir():
            shutil.copytree(source.root / split, out / split)
    write_dataset_json(
        out,
        channel_names=source.channel_names,
        labels=labels,
        num_training=len(cases),
        file_ending=ending,
        name=out.name,
        extra={**_source_extra(source), "weak_labels": dict(description)},
    )
    return out


def read_label(case: Case) -> Image:
    """The label image of a labelled case."""
    if case.label_path is None:
        raise DatasetError(f"case {case.case_id!r} has no label file")
    return read_image(case.label_path)


def with_ignore(labels: LabelSpec) -> LabelSpec:
    """``labels`` with an ``ignore`` label one above the highest value (kept if it has one)."""
    if labels.ignore is not None:
        return labels
    value = max(labels.allowed_values) + 1
    return LabelSpec(
        labels={**labels.labels, "ignore": value},
        regions=labels.regions,
        region_order=labels.region_order,
        ignore=value,
    )


def _source_extra(source: Dataset) -> dict[str, Any]:
    path = source.root / "dataset.json"
    if not path.is_file():
        return {}
    meta = json.loads(path.read_text(encoding="utf-8"))
    keep = ("description", "reference", "licence", "release")
    return {k: meta[k] for k in keep if k in meta}


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
