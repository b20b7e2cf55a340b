"""report.json against its JSON Schema, the summary wording, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from report_shapes import make_image
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.errors import DatasetError, GeometryError
from medseg.io import write_image
from medseg.report import REPORT_SCHEMA, LabelInfo, PriorScan, build_report, report_files

jsonschema = pytest.importorskip("jsonschema")

GEOMETRY = {"spacing": (2.0, 1.0, 1.0), "origin": (0.0, 0.0, 0.0), "direction": np.eye(3)}
INFO = LabelInfo(names={1: "white_matter", 2: "lesion"}, channel_names={0: "T1"})


def _case(lesions: bool = True):
    labels = np.zeros((12, 40, 40), np.uint8)
    labels[1:11, 4:36, 4:36] = 1
    if lesions:
        labels[3:7, 8:16, 24:34] = 2  # high x index: patient left
        labels[5:7, 25:29, 8:12] = 2
    image = make_image(np.where(labels > 0, 100.0, 0.0).astype(np.float32), **GEOMETRY)
    return image, make_image(labels, **GEOMETRY)


def _validate(report_dict):
    jsonschema.Draft202012Validator.check_schema(REPORT_SCHEMA)
    jsonschema.validate(report_dict, REPORT_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_report_json_follows_the_schema_with_a_prior_and_uncertainty():
    image, seg = _case()
    uncertainty = make_image(np.full((12, 40, 40), 0.7, np.float32), **GEOMETRY)
    report = build_report(
        image, seg, labels=INFO, prior=PriorScan(image, seg), uncertainty=uncertainty
    )
    data = json.loads(json.dumps(report.to_dict()))
    _validate(data)
    assert data["lesions"][0]["side"] == "left"
    assert data["lesion_burden"][0]["count"] == 2
    assert {f["code"] for f in data["flags"]} == {"low_confidence"}
    assert "The model is uncertain about white matter, lesion 1 and lesion 2;" in data["summary"]
    bad = {**data, "lesions": [{**data["lesions"][0], "side": "up"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, REPORT_SCHEMA)


def test_summary_wording():
    image, seg = _case()
    report = build_report(image, seg, labels=INFO, prior=PriorScan(image, seg))
    assert report.summary.startswith(
        "Two lesions in the white matter, 0.7 ml in total; the largest, 0.6 ml (13 × 11 mm)"
    )
    assert "lies on the left" in report.summary
    assert "Compared with the prior scan: no new lesions, none resolved, total volume +0 %." in (
        report.summary
    )
    empty_lesions = build_report(*_case(lesions=False), labels=INFO)
    assert empty_lesions.summary == "No lesion was found."


def test_empty_segmentation_gives_a_valid_report():
    image, seg = _case()
    empty = seg.with_array(np.zeros_like(seg.array))
    report = build_report(image, empty, labels=INFO)
    _validate(report.to_dict())
    assert report.summary == "Nothing was found: the segmentation is empty."
    assert [f.code for f in report.findings.flags] == ["empty_structure"]


def test_custom_summariser_gets_the_report_dict():
    image, seg = _case()
    report = build_report(
        image, seg, labels=INFO, summariser=lambda d: f"{len(d['lesions'])} lesions"
    )
    assert report.custom_summary == "2 lesions"


def test_geometry_mismatch_names_both_files(tmp_path):
    image, seg = _case()
    write_image(image, tmp_path / "img.nii.gz")
    moved = make_image(seg.array[0], **{**GEOMETRY, "origin": (0.0, 0.0, 5.0)})
    write_image(moved, tmp_path / "seg.nii.gz")
    with pytest.raises(GeometryError, match=r"seg\.nii\.gz and .*img\.nii\.gz.*origin"):
        report_files(tmp_path / "img.nii.gz", tmp_path / "seg.nii.gz", tmp_path / "out")


def test_unknown_label_value_is_named():
    image, seg = _case()
    arr = seg.array.copy()
    arr[0, 0, 0, 0] = 7
    with pytest.raises(DatasetError, match=r"label value\(s\) 7 are not in the label names"):
        build_report(image, seg.with_array(arr), labels=INFO)


def test_cli_writes_the_report_and_fails_in_one_line(tmp_path):
    image, seg = _case()
    write_image(image, tmp_path / "case_0000.nii.gz")
    write_image(seg, tmp_path / "case.nii.gz")
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {
                "labels": {"background": 0, "white_matter": 1, "lesion": 2},
                "channel_names": {"0": "T1"},
            }
        )
    )
    runner = CliRunner()
    args = ["report", str(tmp_path / "case_0000.nii.gz"), str(tmp_path / "case.nii.gz")]
    result = runner.invoke(
        app_typer,
        [
            *args,
            "--dataset-json",
            str(tmp_path / "dataset.json"),
            "-o",
            str(tmp_path / "out"),
            "--formats",
            "json,csv",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Two lesions in the white matter" in result.stdout
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    _validate(data)
    assert data["case_id"] == "case"
    lesions_csv = (tmp_path / "out" / "lesions.csv").read_text().splitlines()
    assert len(lesions_csv) == 3
    result = runner.invoke(app_typer, [*args, "-o", str(tmp_path / "o2"), "--formats", "xml"])
    assert result.exit_code != 0


def test_volume_far_from_the_training_mean_is_flagged():
    image, seg = _case()
    fingerprint = {"class_voxels": {"1": 500 * 4, "2": 10}, "spacings": [[2.0, 1.0, 1.0]] * 4}
    info = LabelInfo(names=INFO.names, fingerprint=fingerprint)
    report = build_report(image, seg, labels=info)
    flags = [(f.code, f.target) for f in report.findings.flags]
    assert flags == [("volume_out_of_range", "white_matter")]  # lesion classes are not checked
    assert "unusual for the training data" in report.summary


def test_summary_without_lesion_classes_lists_structure_volumes():
    image, seg = _case(lesions=False)
    info = LabelInfo(names={1: "liver", 2: "spleen"})
    report = build_report(image, seg, labels=info)
    assert report.summary.startswith("Segmented: liver (20.5 ml). No spleen was segmented;")


def test_cli_geometry_error_is_one_line_naming_both_files(tmp_path):
    import os
    import subprocess
    import sys

    image, seg = _case()
    write_image(image, tmp_path / "img.nii.gz")
    moved = make_image(seg.array[0][:, :, :30].copy(), **GEOMETRY)
    write_image(moved, tmp_path / "seg.nii.gz")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    files = [str(tmp_path / "img.nii.gz"), str(tmp_path / "seg.nii.gz"), "-o", str(tmp_path / "o")]
    result = subprocess.run(
        [sys.executable, "-c", "from medseg.cli.main import app; app()", "report", *files],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "seg.nii.gz and" in lines[0]
    assert "img.nii.gz are on different voxel grids (shape" in lines[0]


def test_without_label_names_values_are_named_and_lesions_can_be_chosen():
    image, seg = _case()
    plain = build_report(image, seg)
    assert [s.name for s in plain.findings.structures] == ["label_1", "label_2"]
    assert len(plain.findings.lesions) == 0
    chosen = build_report(image, seg, lesion_labels=[2])
    assert len(chosen.findings.lesions) == 2
    with pytest.raises(DatasetError, match="lesion label 'tumour' is not a label"):
        build_report(image, seg, lesion_labels=["tumour"])
