"""check_dataset: each kind of problem is reported for the right case; the CLI exit code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.data import check_dataset, load_dataset, load_nnunet
from medseg.errors import DatasetError


def _messages(report, case_id: str) -> list[str]:
    return [f"{p.severity}: {p.message}" for p in report.problems if p.case_id == case_id]


def test_clean_dataset_has_no_problems(tmp_path: Path, make_nnunet) -> None:
    dataset = load_nnunet(make_nnunet(tmp_path / "D", cases=3, channels=2, test_cases=1))
    calls: list[tuple[int, int]] = []
    report = check_dataset(dataset, on_progress=lambda done, total: calls.append((done, total)))
    assert report.problems == ()
    assert report.ok
    assert report.summary() == "4 cases, 0 errors, 0 warnings"
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    report.raise_for_errors()


@pytest.fixture
def broken(tmp_path: Path, make_nnunet, write_array, spheres: np.ndarray) -> Path:
    """One clean case plus one case per kind of problem (case id = problem)."""
    root = make_nnunet(tmp_path / "Broken", cases=1)
    images, labels = root / "imagesTr", root / "labelsTr"
    image = np.full(spheres.shape, 50.0, np.float32)

    def case(name: str, image_array=image, label_array=spheres, **label_geometry) -> None:
        if image_array is not None:
            write_array(images / f"{name}_0000.nii.gz", image_array)
        if label_array is not None:
            write_array(labels / f"{name}.nii.gz", label_array, **label_geometry)

    case("nolabel", label_array=None)
    case("noimage", image_array=None)
    case("spacing", spacing=(3.0, 0.8, 0.9))
    case("origin", origin=(10.0, -20.0, 5.5))
    case("direction", direction=np.eye(3))
    case("shape", label_array=spheres[:-1])
    unknown = spheres.copy()
    unknown[0, 0, 0] = 7
    case("unknown", label_array=unknown)
    case("empty", label_array=np.zeros_like(spheres))
    case("negative", label_array=spheres.astype(np.int16) - 1)
    nan = image.copy()
    nan[1, 2, 3] = np.nan
    nan[1, 2, 4] = np.inf
    case("nan", image_array=nan)
    fractional = spheres.astype(np.float32)
    fractional[5, 5, 5] = 0.5
    case("fractional", label_array=fractional)
    case("channels")
    write_array(images / "channels_0001.nii.gz", image)
    case("unreadable", image_array=None)
    (images / "unreadable_0000.nii.gz").write_bytes(b"this is not a NIfTI file")
    case("grids")
    write_array(images / "grids_0001.nii.gz", image, spacing=(2.0, 0.8, 0.8))
    meta = json.loads((root / "dataset.json").read_text())
    meta["channel_names"] = {"0": "MR"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


EXPECTED = {
    "nolabel": "error: image without label",
    "noimage": "error: label without image",
    "spacing": "error: label geometry differs from its image: spacing",
    "origin": "error: label geometry differs from its image: origin",
    "direction": "error: label geometry differs from its image: direction differs",
    "shape": "error: label geometry differs from its image: shape",
    "unknown": "error: label values [7] not declared",
    "empty": "warning: empty label",
    "negative": "error: label values [-1] not declared",
    "nan": "error: image has 1 NaN and 1 infinite voxel(s)",
    "fractional": "error: non-integer label values (e.g. 0.5)",
    "channels": "error: inconsistent channel count: 2 channel(s), the dataset declares 1",
    "unreadable": "error: unreadable image",
    "grids": "error: channel geometry differs from grids_0000.nii.gz: spacing",
}


def test_each_problem_reported_for_its_case(broken: Path) -> None:
    report = check_dataset(load_nnunet(broken))
    assert _messages(report, "case_000") == []
    for case_id, expected in EXPECTED.items():
        messages = _messages(report, case_id)
        assert any(m.startswith(expected) for m in messages), (case_id, messages)
    assert _messages(report, "")[0].startswith("error: dataset.json numTraining is 1 but 15")
    assert len(report.warnings) == 1
    assert not report.ok
    unreadable = next(p for p in report.problems if p.case_id == "unreadable")
    assert unreadable.file.endswith("unreadable_0000.nii.gz")
    with pytest.raises(DatasetError, match="errors"):
        report.raise_for_errors()


def test_parallel_and_sequential_agree(broken: Path) -> None:
    dataset = load_nnunet(broken)
    assert check_dataset(dataset, workers=1) == check_dataset(dataset, workers=3)


def test_geometry_tolerance(tmp_path: Path, make_nnunet, write_array, spheres) -> None:
    root = make_nnunet(tmp_path / "D", cases=1)
    write_array(root / "labelsTr" / "case_000.nii.gz", spheres, origin=(10.0, -20.0, 5.0004))
    dataset = load_nnunet(root)
    assert check_dataset(dataset).ok
    strict = check_dataset(dataset, geometry_atol=1e-5)
    assert [p.message.split(":")[0] for p in strict.errors] == [
        "label geometry differs from its image"
    ]


def test_ignore_and_region_values_are_allowed(tmp_path: Path, make_nnunet, write_array, spheres):
    root = make_nnunet(tmp_path / "D", cases=1)
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "whole": [1, 2], "core": 2, "ignore": 3}
    meta["regions_class_order"] = [1, 2]
    (root / "dataset.json").write_text(json.dumps(meta))
    labels = spheres.copy()
    labels[0] = 3
    write_array(root / "labelsTr" / "case_000.nii.gz", labels)
    assert check_dataset(load_nnunet(root)).problems == ()
    labels[:] = 3
    labels[0] = 0
    write_array(root / "labelsTr" / "case_000.nii.gz", labels)
    assert _messages(check_dataset(load_nnunet(root)), "case_000") == [
        "warning: empty label: background only"
    ]


def test_paired_layout_is_checked_too(tmp_path: Path, write_array, spheres) -> None:
    write_array(tmp_path / "images" / "a.nii.gz", spheres.astype(np.float32))
    write_array(tmp_path / "masks" / "a.nii.gz", spheres, spacing=(1.0, 1.0, 1.0))
    report = check_dataset(load_dataset(tmp_path))
    assert [p.case_id for p in report.errors] == ["a"]


def test_cli_exit_codes(tmp_path: Path, make_nnunet, broken: Path) -> None:
    runner = CliRunner()
    clean = make_nnunet(tmp_path / "Clean", cases=2)
    result = runner.invoke(app_typer, ["check", str(clean)])
    assert result.exit_code == 0, result.output
    assert "2 cases, 0 errors, 0 warnings" in result.output
    result = runner.invoke(app_typer, ["check", str(broken)])
    assert result.exit_code == 1
    assert "nolabel" in result.output
    assert "image without label" in result.output
    assert "15 cases, 15 errors, 1 warning" in result.output
