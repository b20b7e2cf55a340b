"""``medseg train`` through Typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medseg.cli.main import app_typer

runner = CliRunner()


def test_help_lists_options() -> None:
    result = runner.invoke(app_typer, ["train", "--help"])
    assert result.exit_code == 0
    for option in ("--output", "--config", "--folds", "--epochs", "--device", "--plan", "--set"):
        assert option in result.output


def test_bad_arguments_are_usage_errors(tmp_path: Path, raw_dataset: Path) -> None:
    result = runner.invoke(
        app_typer, ["train", str(raw_dataset), "-o", str(tmp_path), "--folds", "x"]
    )
    assert result.exit_code == 2
    assert "--folds" in result.output
    result = runner.invoke(
        app_typer, ["train", str(raw_dataset), "-o", str(tmp_path), "--device", "tpu"]
    )
    assert result.exit_code == 2
    assert "--device" in result.output


@pytest.mark.slow
def test_train_command_writes_model_and_prints_dice(tmp_path: Path, raw_dataset: Path) -> None:
    out = tmp_path / "model"
    args = [
        "train",
        str(raw_dataset),
        "-o",
        str(out),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--set",
        "num_folds=2",
        "--set",
        "training.iterations_per_epoch=2",
        "--set",
        "training.val_iterations=1",
    ]
    result = runner.invoke(app_typer, args)
    assert result.exit_code == 0, result.output
    assert f"model written to {out}" in result.output
    assert "fold 0: validation Dice ball" in result.output
    assert (out / "fold_0" / "model.safetensors").is_file()
    # post-processing chosen on fold 0's held-out validation cases, applied by predict
    assert (out / "fold_0" / "validation_labels.npz").is_file()
    assert (out / "postprocessing.json").is_file()
    assert "post-processing chosen on validation cases" in result.output
