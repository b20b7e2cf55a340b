"""The ``medseg evaluate`` command through Typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from medseg.cli.main import app_typer


def test_cli_writes_outputs(dataset, tmp_path):
    root, pred_dir, cases = dataset
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app_typer,
        [
            "evaluate",
            *(str(pred_dir), str(root), "-o", str(out)),
            *("--nsd-tolerance", "1=2,2=1", "--boundary", "erosion", "--no-report"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ball" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["nsd_tolerance_mm"] == {"ball": 2.0, "box": 1.0}
    assert summary["options"]["boundary"] == "erosion"
    assert not (out / "report.html").exists()
    assert (out / "metrics_per_case.csv").read_text().count("\n") == 1 + 2 * len(cases)


def test_cli_missing_pair_is_one_line(dataset):
    from medseg.errors import DatasetError

    root, pred_dir, cases = dataset
    (pred_dir / f"{cases[0]}.nii.gz").unlink()
    result = CliRunner().invoke(app_typer, ["evaluate", str(pred_dir), str(root)])
    assert result.exit_code != 0
    assert isinstance(result.exception, DatasetError)
    assert "\n" not in str(result.exception)


def test_cli_empty_convention_is_recorded_and_checked(dataset, tmp_path):
    root, pred_dir, _ = dataset
    out = tmp_path / "out"
    args = ["evaluate", str(pred_dir), str(root), "-o", str(out), "--no-report"]
    result = CliRunner().invoke(app_typer, [*args, "--empty-convention", "monai"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["empty_convention"] == "monai"
    header = (out / "metrics_per_case.csv").read_text().splitlines()[0].split(",")
    assert {"npv", "fpr", "fnr", "fdr", "for", "prevalence_threshold"} <= set(header)
    result = CliRunner().invoke(app_typer, [*args, "--empty-convention", "deepmind"])
    assert result.exit_code == 2
    assert "monai-keep-empty" in result.output
