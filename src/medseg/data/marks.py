"""Sparse labels that mark every object of a class: the ``every_object_marked`` declaration.

A sparse label map (scribbles, strokes, clicks; unmarked voxels carry the ``ignore`` label)
says nothing about its unmarked voxels. When the annotator marked *every* object of a class
(every lesion got a stroke), it says more: a voxel far from every mark of that class is not of
that class. ``dataset.json`` declares this per class name, with the reach in mm::

    "every_object_marked": {"lesion": 9.0}

meaning: every voxel of class ``lesion`` lies within 9 mm of a voxel marked ``lesion``.
Training then tells the network that unmarked voxels farther than that from every lesion mark
are not lesion (the ``absence`` term, :class:`medseg.train.weak_terms.AbsenceTerm`). Choose the
reach from the largest object: a stroke through a lesion's middle and a lesion radius of at most
6 mm give a reach of 6 mm plus the stroke's distance from the centre.

:func:`every_object_marked` reads and checks the declaration; :func:`marks_reach_mm` measures
the exact reach of simulated marks against the complete labels (``medseg weak sparse`` writes
it for the classes it strokes).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.data.dataset import Dataset
from medseg.data.nnunet import update_dataset_json
from medseg.errors import DatasetError

KEY = "every_object_marked"
"""The ``dataset.json`` key of the declaration."""


def every_object_marked(dataset: Dataset) -> dict[int, float]:
    """The declared classes and their reach, checked against the dataset's labels.

    Parameters
    ----------
    dataset : Dataset
        A dataset whose ``dataset.json`` may hold ``every_object_marked``.

    Returns
    -------
    dict of int to float
        Label value -> reach in mm; empty when nothing is declared.

    Raises
    ------
    DatasetError
        The entry is not a mapping of class names to positive finite numbers, names a class the
        dataset lacks (or background / ignore), or the dataset has no ignore label (then every
        voxel is labelled and there is nothing to declare).
    """
    path = dataset.root / "dataset.json"
    meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    entry = meta.get(KEY, {})
    example = '{"lesion": 9.0}'
    if not isinstance(entry, dict):
        raise DatasetError(f"{path}: {KEY!r} must map class names to a reach in mm, e.g. {example}")
    if entry and dataset.labels.ignore is None:
        raise DatasetError(
            f"{path}: {KEY!r} describes sparse labels, but the dataset has no 'ignore' label: "
            "add one for the unmarked voxels, or remove the declaration"
        )
    foreground = dataset.labels.foreground
    out: dict[int, float] = {}
    for name, reach in sorted(entry.items()):
        if name not in foreground:
            raise DatasetError(
                f"{path}: {KEY}[{name!r}]: not a foreground class of the dataset "
                f"(classes: {sorted(foreground)})"
            )
        if isinstance(reach, bool) or not isinstance(reach, int | float) or not reach > 0:
            raise DatasetError(
                f"{path}: {KEY}[{name!r}] must be a reach in mm > 0, e.g. {example}; got {reach!r}"
            )
        if not math.isfinite(reach):
            raise DatasetError(f"{path}: {KEY}[{name!r}] must be finite, got {reach!r}")
        out[foreground[name]] = float(reach)
    return out


def marks_reach_mm(
    complete: np.ndarray, sparse: np.ndarray, value: int, spacing: tuple[float, ...]
) -> float:
    """Largest distance in mm from a voxel of class ``value`` to the nearest voxel marked so.

    Parameters
    ----------
    complete : ndarray of int, shape (Z, Y, X) or (Y, X)
        The complete label map.
    sparse : ndarray of int, same shape
        The marks (other voxels ignore or other classes).
    value : int
        The class.
    spacing : tuple of float
        Voxel size in mm, array order.

    Returns
    -------
    float
        0 when the class is absent from ``complete``.

    Raises
    ------
    DatasetError
        The class is present but not marked at all.
    """
    present = complete == value
    if not present.any():
        return 0.0
    marked = sparse == value
    if not marked.any():
        raise DatasetError(f"class {value} is present but carries no mark")
    distance = ndimage.distance_transform_edt(~marked, sampling=spacing)
    return float(distance[present].max())


def marks_declaration(reach_mm: dict[str, float]) -> dict[str, dict[str, float]]:
    """The ``dataset.json`` entry for class name -> reach in mm, each reach rounded up to a
    micrometre (so the stored reach never falls below the measured one)."""
    return {KEY: {name: math.ceil(float(r) * 1000) / 1000 for name, r in sorted(reach_mm.items())}}


def write_marks_declaration(root: Path, reach_mm: dict[str, float]) -> None:
    """Add (or replace) ``every_object_marked`` in ``root/dataset.json``."""
    update_dataset_json(root, marks_declaration(reach_mm))
