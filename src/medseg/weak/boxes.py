"""Box labels: one box per object turned into a pseudo-mask by the classical interactive engine.

Box file (JSON), corners inclusive, voxel indices in array order (z, y, x) of the case image::

    {"case_000": [{"label": 3, "lo": [40, 51, 60], "hi": [44, 57, 66]}, ...], ...}

:func:`box_pseudo_mask` segments each box with the random walker of
:class:`medseg.interactive.classical.RandomWalkerEngine` (background seeded outside the box,
object seeded in an ellipse at its centre) on a crop of the box plus ``margin`` voxels, and keeps
the object voxels inside the box. Boxes are painted largest first, so a small box inside a
large one (a lesion in an organ) wins. Voxels outside every box are background; voxels inside a
box that the engine leaves out are background, or ``ignore`` with ``uncertain_as_ignore``.
:func:`painted_boxes` instead paints each box's interior with its class (largest first), the
training label of the box prior (``training.loss: box_prior``, :mod:`medseg.train.weak_terms`),
which learns the objects from the boxes themselves. :func:`boxes_from_label` makes the boxes of
every connected component of a complete label map, to simulate box annotation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.data.dataset import Case, Dataset
from medseg.errors import DatasetError
from medseg.io import Image, read_channels, read_image
from medseg.weak._derive import (
    ProgressCallback,
    derive_dataset,
    load_labelled,
    read_label,
    with_ignore,
)


@dataclass(frozen=True)
class LabelBox:
    """A box around one object of class ``label``; ``lo``/``hi`` inclusive voxel corners."""

    label: int
    lo: tuple[int, ...]
    hi: tuple[int, ...]


def boxes_from_label(label: np.ndarray, classes: Sequence[int] | None = None) -> list[LabelBox]:
    """The bounding box of every 26-connected component of each class.

    Parameters
    ----------
    label : ndarray of int, shape (Z, Y, X)
    classes : sequence of int, optional
        Classes to box (default: every non-zero value present).
    """
    label = np.asarray(label)
    values = [int(v) for v in np.unique(label) if v != 0] if classes is None else list(classes)
    boxes = []
    for value in values:
        components, _ = ndimage.label(label == value, np.ones((3,) * label.ndim, bool))
        for where in ndimage.find_objects(components):
            lo = tuple(int(s.start) for s in where)
            hi = tuple(int(s.stop) - 1 for s in where)
            boxes.append(LabelBox(value, lo, hi))
    return boxes


def painted_boxes(shape: Sequence[int], boxes: Sequence[LabelBox]) -> np.ndarray:
    """A label map with each box's interior set to its class, 0 outside every box.

    Boxes are painted largest first, so a small box inside a large one keeps its class.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape (Z, Y, X) of the case.
    boxes : sequence of LabelBox

    Returns
    -------
    ndarray of int16, shape ``shape``
    """
    out = np.zeros(tuple(shape), np.int16)
    for box in sorted(boxes, key=lambda b: -np.prod(np.subtract(b.hi, b.lo) + 1)):
        out[tuple(slice(a, b + 1) for a, b in zip(box.lo, box.hi, strict=True))] = box.label
    return out


def box_pseudo_mask(
    image: np.ndarray,
    boxes: Sequence[LabelBox],
    spacing: Sequence[float],
    *,
    margin: int = 4,
    ignore: int | None = None,
) -> np.ndarray:
    """Pseudo-mask of boxed objects by the classical random-walker engine.

    Parameters
    ----------
    image : ndarray of float, shape (C, Z, Y, X)
        Image, channel first, raw intensities.
    boxes : sequence of LabelBox
    spacing : sequence of float
        Voxel size in mm, array order.
    margin : int
        Voxels of context around each box given to the engine.
    ignore : int, optional
        Value for box voxels the engine does not call object (default: background, 0).

    Returns
    -------
    ndarray of int16, shape (Z, Y, X)
    """
    from medseg.interactive.classical import RandomWalkerEngine
    from medseg.interactive.prompts import Box

    engine = RandomWalkerEngine()
    shape = np.asarray(image.shape[1:])
    out = np.zeros(tuple(shape), np.int16)
    order = sorted(boxes, key=lambda b: -np.prod(np.subtract(b.hi, b.lo) + 1))
    for box in order:
        lo = np.maximum(np.asarray(box.lo) - margin, 0)
        hi = np.minimum(np.asarray(box.hi) + margin + 1, shape)
        crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        prompt = Box(
            tuple(int(v) for v in np.asarray(box.lo) - lo),
            tuple(int(v) for v in np.asarray(box.hi) - lo),
        )
        prob = engine.predict(image[(slice(None), *crop)], [prompt], None, spacing=tuple(spacing))
        inside = tuple(slice(a, b + 1) for a, b in zip(box.lo, box.hi, strict=True))
        local = tuple(
            slice(a - int(o), b + 1 - int(o)) for a, b, o in zip(box.lo, box.hi, lo, strict=True)
        )
        region = out[inside]
        found = prob[local] >= 0.5
        if ignore is not None:
            region[~found & (region == 0)] = ignore
        region[found] = box.label
    return out


def read_boxes(path: Path | str, dataset: Dataset) -> dict[str, list[LabelBox]]:
    """Read and check a box file against ``dataset`` (cases, classes, image bounds).

    Raises
    ------
    DatasetError
        Malformed JSON, an unknown case or class, corners out of order or outside the image.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: cannot read the box file ({err})") from err
    if not isinstance(data, dict):
        raise DatasetError(f'{path}: expected {{"<case>": [{{"label", "lo", "hi"}}, ...]}}')
    classes = set(dataset.labels.foreground.values())
    cases = {c.case_id: c for c in dataset.cases}
    out: dict[str, list[LabelBox]] = {}
    for case_id, items in data.items():
        if case_id not in cases:
            raise DatasetError(f"{path}: case {case_id!r} is not in {dataset.root}")
        shape = read_image(cases[case_id].image_paths[0]).spatial_shape
        boxes = []
        for i, item in enumerate(items if isinstance(items, list) else [None]):
            where = f"{path}: {case_id}[{i}]"
            try:
                box = LabelBox(
                    int(item["label"]), tuple(map(int, item["lo"])), tuple(map(int, item["hi"]))
                )
            except (TypeError, KeyError, ValueError) as err:
                raise DatasetError(
                    f'{where}: needs "label", "lo" and "hi" (voxel indices)'
                ) from err
            if box.label not in classes:
                raise DatasetError(
                    f"{where}: label {box.label} is not a foreground class ({sorted(classes)})"
                )
            inside = len(box.lo) == len(box.hi) == len(shape) and all(
                0 <= a <= b < n for a, b, n in zip(box.lo, box.hi, shape, strict=True)
            )
            if not inside:
                raise DatasetError(
                    f"{where}: corners lo={box.lo} hi={box.hi} must satisfy 0 <= lo <= hi < {shape}"
                )
            boxes.append(box)
        out[case_id] = boxes
    return out


def boxes_dataset(
    dataset: Dataset | str | Path,
    out: str | Path,
    *,
    boxes: Path | str | None = None,
    uncertain_as_ignore: bool = False,
    painted: bool = False,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Write a copy of a dataset whose training labels are box pseudo-masks, or the boxes.

    Parameters
    ----------
    dataset : Dataset or path
    out : path
        New dataset folder.
    boxes : path, optional
        Box file; default: the boxes of every component of the dataset's own labels
        (simulated box annotation).
    uncertain_as_ignore : bool
        Box voxels not called object become ``ignore`` instead of background.
    painted : bool
        Write the boxes themselves (:func:`painted_boxes`), for training with the box prior
        (``training.loss: box_prior``), instead of random-walker pseudo-masks.
    """
    if painted and uncertain_as_ignore:
        raise DatasetError("painted boxes have no uncertain voxels: drop uncertain_as_ignore")
    source = load_labelled(dataset)
    given = read_boxes(boxes, source) if boxes is not None else None
    spec = with_ignore(source.labels) if uncertain_as_ignore else source.labels

    def derive(index: int, case: Case) -> Image:
        label = read_label(case)
        case_boxes = (
            given.get(case.case_id, []) if given is not None else boxes_from_label(label.array[0])
        )
        if painted:
            return label.with_array(painted_boxes(label.array.shape[1:], case_boxes)[None])
        image = read_channels(case.image_paths)
        mask = box_pseudo_mask(
            image.array.astype(np.float32), case_boxes, image.spacing, ignore=spec.ignore
        )
        return label.with_array(mask[None])

    description = {
        "kind": "painted boxes" if painted else "boxes",
        "source": "file" if boxes else "simulated from labels",
        "uncertain_as_ignore": uncertain_as_ignore,
    }
    return derive_dataset(
        source, Path(out), derive, labels=spec, description=description, on_progress=on_progress
    )
