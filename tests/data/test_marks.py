"""The ``every_object_marked`` declaration of sparse datasets: reading, checking, reach."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg.data.dataset import Dataset, LabelSpec
from medseg.data.marks import every_object_marked, marks_reach_mm, write_marks_declaration
from medseg.errors import DatasetError
from medseg.plan.fingerprint import dataset_signature

SPARSE = LabelSpec(labels={"background": 0, "organ": 1, "lesion": 2, "ignore": 3}, ignore=3)


def _dataset(root: Path, declaration=None, labels: LabelSpec = SPARSE) -> Dataset:
    meta = {"labels": labels.labels, "channel_names": {"0": "MR"}}
    if declaration is not None:
        meta["every_object_marked"] = declaration
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(meta))
    return Dataset(root=root, name=root.name, cases=(), labels=labels, channel_names={0: "MR"})


def test_declaration_maps_class_names_to_values(tmp_path: Path) -> None:
    assert every_object_marked(_dataset(tmp_path / "a", {"lesion": 9})) == {2: 9.0}
    assert every_object_marked(_dataset(tmp_path / "b")) == {}


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        (["lesion"], "must map class names to a reach in mm"),
        ({"tumour": 5.0}, r"\['lesion', 'organ'\]"),
        ({"background": 5.0}, "not a foreground class"),
        ({"ignore": 5.0}, "not a foreground class"),
        ({"lesion": 0}, "reach in mm > 0"),
        ({"lesion": -2.0}, "reach in mm > 0"),
        ({"lesion": "far"}, "reach in mm > 0"),
        ({"lesion": True}, "reach in mm > 0"),
        ({"lesion": float("inf")}, "must be finite"),
    ],
)
def test_malformed_declarations_are_clear_errors(tmp_path: Path, declaration, message) -> None:
    with pytest.raises(DatasetError, match=message):
        every_object_marked(_dataset(tmp_path, declaration))


def test_declaration_needs_an_ignore_label(tmp_path: Path) -> None:
    complete = LabelSpec(labels={"background": 0, "lesion": 1})
    with pytest.raises(DatasetError, match="no 'ignore' label"):
        every_object_marked(_dataset(tmp_path, {"lesion": 3.0}, labels=complete))


def test_reach_is_the_farthest_class_voxel_from_a_mark() -> None:
    complete = np.zeros((5, 9, 9), np.int16)
    complete[2, 2:7, 4] = 2  # a bar of 5 voxels along y
    sparse = np.full(complete.shape, 3, np.int16)
    sparse[2, 3, 4] = 2  # marked one voxel from its top end, three from its bottom end
    assert marks_reach_mm(complete, sparse, 2, (2.0, 0.5, 0.5)) == pytest.approx(1.5)
    assert marks_reach_mm(complete, sparse, 1, (1.0, 1.0, 1.0)) == 0.0  # class absent
    reference = ndimage.distance_transform_edt(sparse != 2, sampling=(2.0, 0.5, 0.5))
    assert marks_reach_mm(complete, sparse, 2, (2.0, 0.5, 0.5)) == reference[complete == 2].max()
    with pytest.raises(DatasetError, match="carries no mark"):
        marks_reach_mm(complete, np.full_like(sparse, 3), 2, (1.0, 1.0, 1.0))


def test_written_declaration_rounds_up_and_changes_the_dataset_signature(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path)
    before = dataset_signature(dataset)
    write_marks_declaration(tmp_path, {"lesion": 4.0000001})
    assert json.loads((tmp_path / "dataset.json").read_text())["every_object_marked"] == {
        "lesion": 4.001
    }
    assert every_object_marked(dataset) == {2: 4.001}
    assert dataset_signature(dataset) != before  # a cached fingerprint is extracted again
