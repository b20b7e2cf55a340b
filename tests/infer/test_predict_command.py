"""``medseg predict`` and ``medseg postprocess`` through Typer's CliRunner and the console entry."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.errors import ModelFormatError
from medseg.io import read_image, write_image


def test_predict_writes_outputs_and_exits_zero(model_factory, make_image, tmp_path):
    source = tmp_path / "a.nii.gz"
    write_image(make_image(), source)
    args = ["predict", str(model_factory()), str(source), "-o", str(tmp_path / "out"), "--fast"]
    result = CliRunner().invoke(app_typer, [*args, "--uncertainty", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "a.nii.gz" in result.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        "a.nii.gz",
        "a_entropy.nii.gz",
        "a_mutual_information.nii.gz",
        "a_volumes.json",
    ]
    volumes = json.loads((tmp_path / "out" / "a_volumes.json").read_text())
    labels = read_image(tmp_path / "out" / "a.nii.gz").array
    assert volumes["labels"]["ball"]["voxels"] == int((labels == 1).sum())


def test_failing_case_others_written_exit_code_1(model_factory, make_image, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(make_image(), folder / "good.nii.gz")
    (folder / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    args = ["predict", str(model_factory()), str(folder), "-o", str(tmp_path / "o"), "--fast"]
    run = subprocess.run(  # the console entry point, as a user runs it
        [sys.executable, "-c", "from medseg.cli.main import app; app()", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 1
    assert "broken" in run.stderr
    assert "1 failed" in run.stderr
    assert "good.nii.gz" in run.stdout
    assert (tmp_path / "o" / "good.nii.gz").is_file()
    assert not (tmp_path / "o" / "broken.nii.gz").exists()
    assert not [p for p in (tmp_path / "o").iterdir() if p.name.startswith(".tmp")]


def test_wrong_channel_count_is_a_failed_case(model_factory, make_image, tmp_path):
    source = tmp_path / "one.nii.gz"
    write_image(make_image(), source)
    model = model_factory(channels=2)
    out = str(tmp_path / "o")
    result = CliRunner().invoke(app_typer, ["predict", str(model), str(source), "-o", out])
    assert result.exit_code == 1
    assert "1 channel(s) but the model expects 2" in result.output


def test_missing_model_is_one_line_error(tmp_path, make_image):
    source = tmp_path / "a.nii.gz"
    write_image(make_image(), source)
    result = CliRunner().invoke(
        app_typer, ["predict", str(tmp_path / "nomodel"), str(source), "-o", str(tmp_path)]
    )
    assert isinstance(result.exception, ModelFormatError)
    # the console entry point turns it into one line and exit code 1
    code = "from medseg.cli.main import app; app()"
    run = subprocess.run(
        [sys.executable, "-c", code, "predict", str(tmp_path / "no"), str(source), "-o", "x"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0
    assert "model folder not found" in run.stderr


def test_bad_folds_option(model_factory, make_image, tmp_path):
    source = tmp_path / "a.nii.gz"
    write_image(make_image(), source)
    result = CliRunner().invoke(
        app_typer,
        ["predict", str(model_factory()), str(source), "-o", str(tmp_path), "--folds", "x"],
    )
    assert result.exit_code == 2


def test_postprocess_command_on_cv_predictions(model_factory, make_image, tmp_path):
    from medseg._config import write_json

    root = tmp_path / "ds"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    preds = tmp_path / "cv"
    preds.mkdir()
    for i in range(2):
        image = make_image(seed=i)
        label = (image.array > 60).astype(np.uint8)
        prediction = label.copy()
        prediction[0, 0, 0, 0] = 1  # a stray voxel that keep-largest removes
        write_image(image, root / "imagesTr" / f"c{i}_0000.nii.gz")
        write_image(image.with_array(label), root / "labelsTr" / f"c{i}.nii.gz")
        write_image(image.with_array(prediction), preds / f"c{i}.nii.gz")
    write_json(
        {
            "channel_names": {"0": "MR"},
            "labels": {"background": 0, "ball": 1, "shell": 2},
            "numTraining": 2,
            "file_ending": ".nii.gz",
        },
        root / "dataset.json",
    )
    model = model_factory(folds=(0, 1))
    write_json(
        [{"train": ["c1"], "val": ["c0"]}, {"train": ["c0"], "val": ["c1"]}],
        model / "splits_final.json",
    )
    result = CliRunner().invoke(
        app_typer, ["postprocess", str(model), str(root), "--predictions", str(preds)]
    )
    assert result.exit_code == 0, result.output
    rules = json.loads((model / "postprocessing.json").read_text())
    assert rules["keep_largest"] == [1] or rules["keep_largest_foreground"]
    assert "min_component_size (label 1, < 2 voxels): Dice" in result.output
    # -o writes the rules elsewhere and leaves the model's own file alone
    (model / "postprocessing.json").unlink()
    other = tmp_path / "trial" / "rules.json"
    argv = ["postprocess", str(model), str(root), "--predictions", str(preds), "-o", str(other)]
    result = CliRunner().invoke(app_typer, argv)
    assert result.exit_code == 0, result.output
    assert json.loads(other.read_text()) == rules
    assert not (model / "postprocessing.json").exists()
