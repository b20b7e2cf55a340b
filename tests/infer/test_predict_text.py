"""``medseg predict --text``: the phrase is resolved on each predicted label map."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.io import read_image, write_image


def test_predict_text_writes_the_selection(model_factory, make_image, tmp_path):
    source = tmp_path / "a.nii.gz"
    write_image(make_image(), source)
    args = ["predict", str(model_factory()), str(source), "-o", str(tmp_path / "out"), "--fast"]
    result = CliRunner().invoke(app_typer, [*args, "--device", "cpu", "--text", "the ball"])
    assert result.exit_code == 0, result.output
    labels = read_image(tmp_path / "out" / "a.nii.gz")
    selection = read_image(tmp_path / "out" / "text" / "a" / "selection.nii.gz")
    assert selection.same_geometry(labels)
    assert np.array_equal(selection.array > 0, labels.array == 1)
    data = json.loads((tmp_path / "out" / "text" / "a" / "selection.json").read_text())
    assert data["clauses"][0]["classes"] == ["ball"]


def test_predict_text_unknown_class_is_reported_per_case(model_factory, make_image, tmp_path):
    source = tmp_path / "a.nii.gz"
    write_image(make_image(), source)
    args = ["predict", str(model_factory()), str(source), "-o", str(tmp_path / "out"), "--fast"]
    result = CliRunner().invoke(app_typer, [*args, "--device", "cpu", "--text", "the pancreas"])
    assert result.exit_code == 0, result.output
    assert "no class 'pancreas'" in result.output
    assert (tmp_path / "out" / "a.nii.gz").is_file()
