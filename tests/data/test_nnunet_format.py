"""nnU-Net raw format: dataset.json validation, case discovery and writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medseg.data import LabelSpec, load_nnunet, parse_labels, read_dataset_json, write_dataset_json
from medseg.errors import DatasetError

BRATS_LABELS = {
    "background": 0,
    "whole_tumor": [1, 2, 3],
    "tumor_core": [2, 3],
    "enhancing_tumor": 3,
}


def test_load_finds_cases_channels_and_test_cases(tmp_path: Path, make_nnunet) -> None:
    root = make_nnunet(tmp_path / "Dataset007_Tiny", cases=3, channels=2, test_cases=1)
    dataset = load_nnunet(root)
    assert dataset.name == "Dataset007_Tiny"
    assert [c.case_id for c in dataset.cases] == ["case_000", "case_001", "case_002"]
    assert [p.name for p in dataset.cases[1].image_paths] == [
        "case_001_0000.nii.gz",
        "case_001_0001.nii.gz",
    ]
    assert dataset.cases[2].label_path == root / "labelsTr" / "case_002.nii.gz"
    assert [c.case_id for c in dataset.test_cases] == ["case_003"]
    assert dataset.test_cases[0].label_path is None
    assert dataset.channel_names == {0: "MR0", 1: "MR1"}
    assert dataset.labels.labels == {"background": 0, "outer": 1, "inner": 2}
    assert dataset.declared_num_training == 3
    assert dataset.num_channels == 2


def test_unpaired_files_become_cases(tmp_path: Path, make_nnunet) -> None:
    root = make_nnunet(tmp_path / "D", cases=2)
    (root / "labelsTr" / "case_000.nii.gz").rename(root / "labelsTr" / "orphan.nii.gz")
    (root / "imagesTr" / "notes.txt").write_text("not an image")
    cases = {c.case_id: c for c in load_nnunet(root).cases}
    assert set(cases) == {"case_000", "case_001", "orphan"}
    assert cases["case_000"].label_path is None
    assert cases["orphan"].image_paths == ()


def _write_json(root: Path, **meta: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "imagesTr").mkdir(exist_ok=True)
    base = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "organ": 1},
        "numTraining": 0,
        "file_ending": ".nii.gz",
    }
    base.update(meta)
    (root / "dataset.json").write_text(json.dumps({k: v for k, v in base.items() if v is not None}))
    return root


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"labels": None}, "missing required key.*labels"),
        ({"numTraining": None, "file_ending": None}, "numTraining, file_ending"),
        ({"file_ending": "nii.gz"}, "file_ending must be"),
        ({"numTraining": -1}, "numTraining must be"),
        ({"numTraining": "3"}, "numTraining must be"),
        ({"labels": {"organ": 1}}, "background"),
        ({"labels": {"background": 0, "organ": 2}}, "consecutive"),
        ({"labels": {"background": 0, "a": 1, "b": 1}}, "duplicate"),
        ({"labels": {"background": 0, "organ": "liver"}}, "'organ' has value 'liver'"),
        ({"labels": {"background": 0, "ignore": 1, "organ": 2}}, "ignore label"),
        ({"channel_names": {"1": "CT"}}, "channel_names keys"),
        ({"channel_names": ["CT"]}, "channel_names"),
        ({"labels": BRATS_LABELS}, "regions_class_order"),
        ({"labels": BRATS_LABELS, "regions_class_order": [1, 2]}, "3 regions"),
    ],
)
def test_bad_dataset_json_is_a_clear_error(tmp_path: Path, meta: dict, match: str) -> None:
    root = _write_json(tmp_path / "D", **meta)
    with pytest.raises(DatasetError, match=match):
        load_nnunet(root)


def test_missing_or_broken_json(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"dataset\.json"):
        load_nnunet(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_dataset_json(tmp_path / "dataset.json")


def test_missing_images_folder(tmp_path: Path) -> None:
    root = _write_json(tmp_path / "D")
    (root / "imagesTr").rmdir()
    with pytest.raises(DatasetError, match="imagesTr"):
        load_nnunet(root)


def test_regions_and_ignore_are_parsed() -> None:
    spec = parse_labels({**BRATS_LABELS, "ignore": 4}, [1, 2, 3])
    assert spec.regions == {"whole_tumor": (1, 2, 3), "tumor_core": (2, 3), "enhancing_tumor": (3,)}
    assert spec.region_order == (1, 2, 3)
    assert spec.ignore == 4
    assert spec.allowed_values == {0, 1, 2, 3, 4}
    plain = parse_labels({"background": 0, "a": 1, "ignore": 2})
    assert plain.ignore == 2
    assert plain.foreground == {"a": 1}


@pytest.mark.parametrize(
    "labels",
    [
        LabelSpec(labels={"background": 0, "liver": 1, "tumour": 2}),
        parse_labels({**BRATS_LABELS, "ignore": 4}, [1, 2, 3]),
    ],
)
def test_write_dataset_json_round_trip(tmp_path: Path, labels: LabelSpec) -> None:
    path = write_dataset_json(
        tmp_path / "D",
        channel_names={0: "T1", 1: "FLAIR"},
        labels=labels,
        num_training=5,
        file_ending=".nii.gz",
        name="Dataset009_X",
        extra={"description": "test"},
    )
    (tmp_path / "D" / "imagesTr").mkdir()
    meta = json.loads(path.read_text())
    assert meta["numTraining"] == 5
    assert meta["channel_names"] == {"0": "T1", "1": "FLAIR"}
    assert {p.name for p in path.parent.iterdir()} == {"dataset.json", "imagesTr"}  # no tmp left
    loaded = load_nnunet(tmp_path / "D")
    assert loaded.labels == labels
    assert loaded.name == "Dataset009_X"


def test_write_refuses_invalid_labels(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="background"):
        write_dataset_json(
            tmp_path, channel_names={0: "CT"}, labels={"a": 1}, num_training=1, file_ending=".nrrd"
        )
    assert not (tmp_path / "dataset.json").exists()


def test_explicit_file_lists_are_checked_for_safety(tmp_path: Path, make_nnunet) -> None:
    root = make_nnunet(tmp_path / "D", cases=1)
    meta = json.loads((root / "dataset.json").read_text())
    meta["dataset"] = {
        "a": {"images": ["imagesTr/case_000_0000.nii.gz"], "label": "labelsTr/case_000.nii.gz"}
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    (case,) = load_nnunet(root).cases
    assert case.case_id == "a"
    assert case.image_paths == (root / "imagesTr" / "case_000_0000.nii.gz",)
    meta["dataset"]["a"]["label"] = "../../outside.nii.gz"
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="unsafe path"):
        load_nnunet(root)
