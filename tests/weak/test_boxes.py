"""Box labels -> pseudo-masks with the classical engine; the box file and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from weak_phantoms import phantom_label

from medseg.data import load_dataset
from medseg.errors import DatasetError
from medseg.evaluate.overlap import dice
from medseg.io import read_image
from medseg.weak.boxes import (
    LabelBox,
    box_pseudo_mask,
    boxes_dataset,
    boxes_from_label,
    painted_boxes,
    read_boxes,
)


def test_boxes_from_label_bound_each_component() -> None:
    label = phantom_label()
    boxes = boxes_from_label(label)
    assert sorted(b.label for b in boxes) == [1, 2, 2]
    lesions = [b for b in boxes if b.label == 2]
    assert LabelBox(2, (7, 10, 9), (8, 11, 10)) in lesions
    organ = next(b for b in boxes if b.label == 1)
    assert organ.lo == (1, 5, 5)
    assert organ.hi == (15, 19, 19)


def test_pseudo_mask_recovers_a_bright_ball_in_its_box() -> None:
    rng = np.random.default_rng(0)
    truth = phantom_label() > 0
    image = (truth * 100.0 + rng.normal(0, 5, truth.shape))[None].astype(np.float32)
    (box,) = boxes_from_label(truth.astype(np.int16))
    mask = box_pseudo_mask(image, [box], (2.0, 1.0, 1.0))
    assert dice(mask == 1, truth) > 0.9
    inside = np.zeros(truth.shape, bool)
    inside[tuple(slice(a, b + 1) for a, b in zip(box.lo, box.hi, strict=True))] = True
    assert not mask[~inside].any()  # nothing outside the box
    ignored = box_pseudo_mask(image, [box], (2.0, 1.0, 1.0), ignore=9)
    assert set(np.unique(ignored[inside])) <= {1, 9}


def test_boxes_dataset_and_box_file_errors(phantom_dataset: Path, tmp_path: Path) -> None:
    out = boxes_dataset(phantom_dataset, tmp_path / "boxes")
    assert len(load_dataset(out).labelled) == 3
    pseudo = read_image(out / "labelsTr" / "case_0.nii.gz").array[0]
    assert dice(pseudo > 0, phantom_label() > 0) > 0.8
    dataset = load_dataset(phantom_dataset)
    good = tmp_path / "boxes.json"
    good.write_text(json.dumps({"case_0": [{"label": 2, "lo": [7, 10, 9], "hi": [8, 11, 10]}]}))
    assert read_boxes(good, dataset) == {"case_0": [LabelBox(2, (7, 10, 9), (8, 11, 10))]}
    bad = tmp_path / "bad.json"
    for entry, message in [
        ({"case_9": []}, "case 'case_9' is not in"),
        ({"case_0": [{"label": 5, "lo": [0, 0, 0], "hi": [1, 1, 1]}]}, "not a foreground class"),
        ({"case_0": [{"label": 1, "lo": [0, 0, 0], "hi": [1, 1, 99]}]}, "must satisfy"),
        ({"case_0": [{"label": 1, "lo": [0, 0]}]}, 'needs "label", "lo" and "hi"'),
    ]:
        bad.write_text(json.dumps(entry))
        with pytest.raises(DatasetError, match=message):
            read_boxes(bad, dataset)


def test_painted_boxes_put_small_boxes_on_top() -> None:
    boxes = [LabelBox(2, (1, 1), (2, 2)), LabelBox(1, (0, 0), (3, 4))]
    expected = np.array(
        [
            [1, 1, 1, 1, 1, 0],
            [1, 2, 2, 1, 1, 0],
            [1, 2, 2, 1, 1, 0],
            [1, 1, 1, 1, 1, 0],
        ]
    )
    assert np.array_equal(painted_boxes((4, 6), boxes), expected)
    assert np.array_equal(painted_boxes((4, 6), boxes[::-1]), expected)


def test_painted_boxes_dataset(phantom_dataset: Path, tmp_path: Path) -> None:
    out = boxes_dataset(phantom_dataset, tmp_path / "painted", painted=True)
    painted = read_image(out / "labelsTr" / "case_0.nii.gz").array[0]
    truth = phantom_label()
    assert np.array_equal(painted, painted_boxes(truth.shape, boxes_from_label(truth)))
    assert np.all(painted[truth == 2] == 2)  # every lesion inside its painted box
    meta = json.loads((out / "dataset.json").read_text())["weak_labels"]
    assert meta["kind"] == "painted boxes"
    with pytest.raises(DatasetError, match="uncertain_as_ignore"):
        boxes_dataset(phantom_dataset, tmp_path / "x", painted=True, uncertain_as_ignore=True)
