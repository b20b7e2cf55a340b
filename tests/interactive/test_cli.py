"""``medseg train-interactive`` and ``medseg interactive-eval`` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medseg.cli.main import app_typer

runner = CliRunner()


def test_interactive_eval_classical_writes_results(sphere_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    args = [
        "interactive-eval",
        "classical",
        str(sphere_dataset),
        "--labels",
        "sphere",
        "--max-cases",
        "1",
        "--interactions",
        "2",
        "--output",
        str(out),
    ]
    result = runner.invoke(app_typer, args)
    assert result.exit_code == 0, result.output
    assert "sphere" in result.output
    summary = json.loads((out / "interactive_cvpr_summary.json").read_text())
    assert summary["engine"] == "classical"
    assert len(summary["classes"]["sphere"]["dice_per_step"]) == 2


@pytest.mark.slow
def test_train_then_evaluate_a_learned_model(sphere_dataset: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    train = [
        "train-interactive",
        str(sphere_dataset),
        "-o",
        str(model),
        "--iterations",
        "2",
        "--batch-size",
        "1",
        "--size",
        "32",
        "--max-rounds",
        "1",
    ]
    result = runner.invoke(app_typer, train)
    assert result.exit_code == 0, result.output
    assert (model / "model.safetensors").is_file()
    evaluate = [
        "interactive-eval",
        str(model),
        str(sphere_dataset),
        "--protocol",
        "clicks",
        "--labels",
        "1",
        "--max-cases",
        "1",
        "--interactions",
        "1",
    ]
    result = runner.invoke(app_typer, evaluate)
    assert result.exit_code == 0, result.output


def test_bad_engine_and_protocol_are_one_line_errors(sphere_dataset: Path) -> None:
    from medseg.errors import ConfigError, ModelFormatError

    result = runner.invoke(app_typer, ["interactive-eval", "nowhere", str(sphere_dataset)])
    assert isinstance(result.exception, ModelFormatError)
    result = runner.invoke(
        app_typer, ["interactive-eval", "classical", str(sphere_dataset), "--protocol", "x"]
    )
    assert isinstance(result.exception, ConfigError)


def test_train_universal_runs_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train-universal", "-o", str(out), "--pool-size", "2", "--batch-size", "1"]
    result = runner.invoke(app_typer, [*args, "--iterations", "1"])
    assert result.exit_code == 0, result.output
    assert "1 iterations" in result.output
    result = runner.invoke(app_typer, [*args, "--iterations", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "state.json").read_text())["iteration"] == 2
