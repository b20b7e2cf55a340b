"""``plan`` and ``train`` run ``medseg check``'s checks first and stop on a bad dataset.

An undeclared label value (7 in a 0-2 dataset) lies in the background corner, where cropping to
the nonzero region would remove it: nothing may train on such a dataset silently.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from medseg.cli.main import app
from medseg.data import load_dataset, write_dataset_json
from medseg.errors import DatasetError
from medseg.io import Image, write_image
from medseg.plan import extract_fingerprint


def _write_dataset(root: Path, *, stray_value: int | None, empty_case: bool = False) -> Path:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        image = np.zeros((12, 12, 12), np.float32)
        image[2:10, 2:10, 2:10] = 100 + rng.normal(0, 5, (8, 8, 8))
        label = np.zeros((12, 12, 12), np.uint8)
        if not (empty_case and i == 0):
            label[3:9, 3:9, 3:9] = 1
            label[5:7, 5:7, 5:7] = 2
        if stray_value is not None and i == 1:
            label[0, 0, 0] = stray_value  # outside the nonzero image: cropping removes it
        write_image(Image.from_array(image[None]), root / "imagesTr" / f"case{i}_0000.nii.gz")
        write_image(Image.from_array(label[None]), root / "labelsTr" / f"case{i}.nii.gz")
    write_dataset_json(
        root,
        channel_names={0: "T1"},
        labels={"background": 0, "inner": 1, "core": 2},
        num_training=3,
        file_ending=".nii.gz",
    )
    return root


def _run(monkeypatch, capsys, argv: list[str]) -> tuple[int, str, list[str]]:
    monkeypatch.setattr(sys, "argv", ["medseg", *argv])
    with pytest.raises(SystemExit) as info:
        app()
    captured = capsys.readouterr()
    return info.value.code, captured.out, [ln for ln in captured.err.splitlines() if ln.strip()]


@pytest.fixture
def stray_dataset(tmp_path: Path) -> Path:
    return _write_dataset(tmp_path / "Dataset009_Stray", stray_value=7)


def test_plan_stops_on_an_undeclared_label_value(monkeypatch, capsys, stray_dataset, tmp_path):
    plan_json = tmp_path / "plan.json"
    code, out, err = _run(monkeypatch, capsys, ["plan", str(stray_dataset), "-o", str(plan_json)])
    assert code == 1
    assert len(err) == 1
    assert "case case1" in err[0]
    assert "[7]" in err[0]
    assert "not declared" in out  # the check's table
    assert not plan_json.exists()


def test_train_stops_before_training(monkeypatch, capsys, stray_dataset, tmp_path):
    model = tmp_path / "model"
    argv = ["train", str(stray_dataset), "-o", str(model), "--epochs", "1", "--device", "cpu"]
    code, _, err = _run(monkeypatch, capsys, argv)
    assert code == 1
    assert len(err) == 1
    assert "case case1" in err[0]
    assert "[7]" in err[0]
    assert not model.exists()


def test_accepting_warnings_is_explicit(monkeypatch, capsys, tmp_path):
    dataset = _write_dataset(tmp_path / "Dataset010_Empty", stray_value=None, empty_case=True)
    code, out, err = _run(monkeypatch, capsys, ["plan", str(dataset), "--device", "cpu"])
    assert code == 1
    assert len(err) == 1
    assert "--accept-warnings" in err[0]
    assert "case case0" in err[0]
    assert "empty label" in out
    argv = ["plan", str(dataset), "--device", "cpu", "--accept-warnings"]
    code, out, err = _run(monkeypatch, capsys, argv)
    assert code == 0
    assert "patch" in out.lower()


def test_fingerprint_refuses_an_undeclared_value_too(stray_dataset):
    """The library path (a notebook calling the planner) checks the values it reads."""
    with pytest.raises(DatasetError, match=r"case1\.nii\.gz: label values \[7\] not declared"):
        extract_fingerprint(load_dataset(stray_dataset))


def test_preprocessing_refuses_an_undeclared_value(stray_dataset, tmp_path):
    from medseg.plan import make_plan
    from medseg.preprocess import preprocess_dataset

    clean = _write_dataset(tmp_path / "Dataset011_Clean", stray_value=None)
    plan = make_plan(extract_fingerprint(load_dataset(clean)))
    with pytest.raises(DatasetError, match=r"case case1: .*label values \[7\] not declared"):
        preprocess_dataset(load_dataset(stray_dataset), plan, None, tmp_path / "cache", workers=1)
