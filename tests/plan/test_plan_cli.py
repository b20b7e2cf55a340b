"""``medseg plan`` and ``medseg preprocess`` through Typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.data import write_dataset_json
from medseg.plan import load_plan


@pytest.fixture
def raw_dataset(make_dataset):
    dataset = make_dataset(n=2)
    write_dataset_json(
        dataset.root,
        channel_names=dataset.channel_names,
        labels=dataset.labels,
        num_training=2,
        file_ending=".nii.gz",
    )
    return dataset.root


def test_plan_writes_json_with_overrides(raw_dataset, tmp_path):
    out = tmp_path / "model" / "plan.json"
    out.parent.mkdir()
    result = CliRunner().invoke(
        app_typer,
        [
            "plan",
            str(raw_dataset),
            "-o",
            str(out),
            "--device",
            "cpu",
            "--patch",
            "16,16,16",
            "--batch-size",
            "3",
            "--epochs",
            "5",
            "--set",
            "training.learning_rate=0.002",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "patch" in result.output
    assert "why (3d):" in result.output
    plan = load_plan(out)
    config = plan.configurations["3d"]
    assert (config.patch_size, config.batch_size, config.training.epochs) == ((16, 16, 16), 3, 5)
    assert config.training.learning_rate == 0.002
    assert (out.parent / "fingerprint.json").exists()


def test_plan_unknown_override_fails_cleanly(raw_dataset):
    result = CliRunner().invoke(
        app_typer, ["plan", str(raw_dataset), "--device", "cpu", "--set", "training.speed=11"]
    )
    assert result.exit_code != 0
    assert "unknown key" in str(result.exception)


def test_preprocess_command_fills_cache(raw_dataset, tmp_path):
    plan_path = tmp_path / "plan.json"
    runner = CliRunner()
    assert (
        runner.invoke(
            app_typer, ["plan", str(raw_dataset), "-o", str(plan_path), "--device", "cpu"]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        app_typer,
        [
            "preprocess",
            str(raw_dataset),
            "--plan",
            str(plan_path),
            "-o",
            str(tmp_path / "cache"),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "cache" / "3d" / "manifest.json").read_text())
    assert sorted(manifest["cases"]) == ["case0", "case1"]


def test_plan_cascade_flag_adds_the_two_stages(raw_dataset, tmp_path):
    out = tmp_path / "plan.json"
    args = ["plan", str(raw_dataset), "-o", str(out), "--device", "cpu"]
    result = CliRunner().invoke(app_typer, [*args, "--cascade"])
    assert result.exit_code == 0, result.output
    plan = load_plan(out)
    assert plan.configurations["3d_cascade_fullres"].previous_stage == "3d_lowres"
    assert "why (3d_lowres)" in result.output
    result = CliRunner().invoke(app_typer, [*args, "--no-cascade"])
    assert result.exit_code == 0, result.output
    assert "3d_lowres" not in load_plan(out).configurations
