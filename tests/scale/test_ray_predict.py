"""Ray batch prediction: local Ray, 2 workers, a corrupted case, a resumed re-run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.infer import Predictor
from medseg.io import read_image
from medseg.scale import predict_with_ray

pytest.importorskip("ray")


@pytest.mark.slow
def test_two_workers_one_corrupt_case_then_rerun_only_the_failed(tiny_model, write_cases, tmp_path):
    inputs = tmp_path / "in"
    write_cases(inputs, 5)
    (inputs / "corrupt.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    reference = Predictor(tiny_model, device="cpu").predict_files(inputs, tmp_path / "single")
    assert len(reference.outputs) == 5

    out = tmp_path / "ray"
    report = predict_with_ray(tiny_model, inputs, out, workers=2, cpus_per_worker=1)

    assert sorted(o.case_id for o in report.outputs) == [f"case{i}" for i in range(5)]
    (failure,) = report.failures
    assert failure.case_id == "corrupt"
    assert "corrupt.nii.gz" in failure.message
    for case in reference.outputs:
        ours = read_image(out / case.labels_path.name)
        theirs = read_image(case.labels_path)
        np.testing.assert_array_equal(ours.array, theirs.array)
        assert ours.spacing == pytest.approx(theirs.spacing)
    assert len(report.workers) == 2  # both actors got work
    assert sum(w.cases for w in report.workers) == 5
    assert all(w.peak_rss_mib > 50 for w in report.workers)
    manifest = json.loads((out / "manifest.json").read_text())
    statuses = {case: entry["status"] for case, entry in manifest["cases"].items()}
    assert statuses == {**{f"case{i}": "done" for i in range(5)}, "corrupt": "failed"}
    assert "not a readable" in manifest["cases"]["corrupt"]["message"]

    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("case*.nii.gz")}
    args = ["predict", str(tiny_model), str(inputs), "-o", str(out), "--device", "cpu"]
    result = CliRunner().invoke(app_typer, [*args, "--ray", "local", "--workers", "2"])
    assert result.exit_code == 1, result.output  # the corrupt case still fails
    assert "0 case(s) written" in result.output
    assert "5 already done" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("case*.nii.gz")} == stamps
    rerun = json.loads((out / "manifest.json").read_text())["cases"]
    assert rerun["corrupt"]["finished"] >= manifest["cases"]["corrupt"]["finished"]
    assert rerun["case0"] == manifest["cases"]["case0"]  # untouched entry
