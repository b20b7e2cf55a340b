"""``medseg predict --report``'s helper: a report per predicted case and a cohort CSV."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest
from report_shapes import make_image

from medseg.cli.report_commands import report_predictions
from medseg.infer.files import CaseOutput
from medseg.io import write_image

GEOMETRY = {"spacing": (2.0, 1.0, 1.0), "origin": (0.0, 0.0, 0.0), "direction": np.eye(3)}


def test_report_per_case_and_cohort_table(tmp_path):
    images, preds = tmp_path / "images", tmp_path / "pred"
    images.mkdir()
    preds.mkdir()
    outputs = []
    for k, lesions in enumerate((0, 2)):
        labels = np.zeros((8, 30, 30), np.uint8)
        labels[1:7, 3:27, 3:27] = 1
        for j in range(lesions):
            labels[3:5, 6 + 10 * j : 9 + 10 * j, 10:14] = 2
        write_image(make_image(labels.astype(np.float32), **GEOMETRY), images / f"c{k}_0000.nii.gz")
        write_image(make_image(labels, **GEOMETRY), preds / f"c{k}.nii.gz")
        outputs.append(CaseOutput(f"c{k}", preds / f"c{k}.nii.gz"))
    write_image(make_image(np.zeros((4, 4, 4), np.uint8), **GEOMETRY), preds / "bad.nii.gz")
    outputs.append(CaseOutput("c2", preds / "bad.nii.gz"))  # on another grid: fails alone
    write_image(
        make_image(np.zeros((8, 30, 30), np.float32), **GEOMETRY), images / "c2_0000.nii.gz"
    )
    model = SimpleNamespace(
        labels={"background": 0, "organ": 1, "lesion": 2},
        channel_names={0: "CT"},
        fingerprint={"class_voxels": {"1": 3456 * 10}, "spacings": [[2.0, 1.0, 1.0]] * 10},
        path=tmp_path / "model",
    )
    report_predictions(outputs, [images], model, tmp_path / "reports")

    rows = list(csv.DictReader((tmp_path / "reports" / "cohort.csv").open()))
    assert [r["case_id"] for r in rows] == ["c0", "c1"]
    assert [r["lesion_count"] for r in rows] == ["0", "2"]
    assert float(rows[1]["organ_volume_ml"]) == pytest.approx((3456 - 48) * 2e-3)
    assert rows[0]["flags"] == ""
    for case in ("c0", "c1"):
        assert (tmp_path / "reports" / case / "report.pdf").is_file()
    assert not (tmp_path / "reports" / "c2").exists()
