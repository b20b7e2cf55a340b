"""``medseg train --classify`` / ``predict --case-table`` / ``evaluate``: options and a tiny run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.errors import ConfigError, DatasetError
from medseg.train.api import _classification_overrides

runner = CliRunner()
CASES = "case,age,sex,risk\ns0,30,F,low\ns1,70,M,high\ns2,35,M,low\ns3,75,F,high\n"


def test_train_passes_the_options(tmp_path: Path, raw_dataset: Path, monkeypatch) -> None:
    import medseg.train

    seen = {}

    def fake_train_model(dataset, output, **kwargs):
        seen.update(kwargs)
        raise ConfigError("stop here")

    monkeypatch.setattr(medseg.train, "train_model", fake_train_model)
    table = tmp_path / "t.csv"
    args = ["train", str(raw_dataset), "-o", str(tmp_path / "m"), "--classify", "risk"]
    args += ["--metadata", "age, sex:cat", "--case-table", str(table)]
    result = runner.invoke(app_typer, args)
    assert isinstance(result.exception, ConfigError)
    assert seen["classify"] == "risk"
    assert seen["metadata"] == ["age", "sex:cat"]
    assert seen["case_table"] == table


def test_classification_overrides() -> None:
    assert _classification_overrides(None, None) == {}
    assert _classification_overrides("risk", ["age"]) == {
        "training.classification.target": "risk",
        "training.classification.metadata": ["age"],
    }
    with pytest.raises(ConfigError, match="give classify too"):
        _classification_overrides(None, ["age"])


def test_missing_case_table_is_one_clear_error(tmp_path: Path, raw_dataset: Path) -> None:
    args = ["train", str(raw_dataset), "-o", str(tmp_path / "m"), "--classify", "risk"]
    args += ["--device", "cpu", "--set", "num_folds=2", "--epochs", "1"]
    result = runner.invoke(app_typer, args)
    assert isinstance(result.exception, DatasetError)
    assert "case table not found" in str(result.exception)


@pytest.mark.slow
def test_train_predict_evaluate(tmp_path: Path, raw_dataset: Path) -> None:
    (raw_dataset / "cases.csv").write_text(CASES)
    model = tmp_path / "model"
    args = ["train", str(raw_dataset), "-o", str(model), "--epochs", "1", "--device", "cpu"]
    args += ["--workers", "0", "--set", "num_folds=2", "--set", "training.iterations_per_epoch=2"]
    args += ["--set", "training.val_iterations=1", "--classify", "risk", "--metadata", "age,sex"]
    result = runner.invoke(app_typer, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((model / "fold_0" / "val_metrics.json").read_text())
    assert metrics["classification"]["n_cases"] == 2

    pred = tmp_path / "pred"
    args = ["predict", str(model), str(raw_dataset / "imagesTr"), "-o", str(pred), "--fast"]
    result = runner.invoke(app_typer, [*args, "--device", "cpu"])
    assert isinstance(result.exception, ConfigError)  # the model reads age and sex
    assert "--case-table" in str(result.exception)
    table = raw_dataset / "cases.csv"
    result = runner.invoke(app_typer, [*args, "--device", "cpu", "--case-table", str(table)])
    assert result.exit_code == 0, result.output
    with open(pred / "classification.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case"] for r in rows] == ["s0", "s1", "s2", "s3"]
    assert list(rows[0]) == ["case", "predicted", "p_high", "p_low"]
    for row in rows:
        assert float(row["p_high"]) + float(row["p_low"]) == pytest.approx(1.0, abs=1e-5)
        assert row["predicted"] == ("high" if float(row["p_high"]) > 0.5 else "low")

    out = tmp_path / "eval"
    result = runner.invoke(app_typer, ["evaluate", str(pred), str(raw_dataset), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "classification of risk: accuracy" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classification"]["n"] == 4
    assert "Case-level classification" in (out / "report.html").read_text()
