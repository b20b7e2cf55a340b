"""``medseg info`` on every format, and its one-line error path."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.errors import ImageReadError
from medseg.io import Image, write_image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"])
def test_info_prints_geometry_and_range(tmp_path: Path, oblique_image: Image, suffix):
    array = np.arange(336, dtype=np.int16).reshape(1, 6, 7, 8) - 100
    write_image(oblique_image.with_array(array), tmp_path / f"img{suffix}")
    result = CliRunner().invoke(app_typer, ["info", str(tmp_path / f"img{suffix}")])
    assert result.exit_code == 0, result.output
    assert "(6, 7, 8)" in result.output
    assert "3, 0.8, 0.7" in result.output
    assert "-100 .. 235" in result.output
    assert "int16" in result.output


def test_info_on_png_and_dicom(tmp_path: Path, rng, ct_series_writer):
    write_image(Image.from_array(np.full((3, 4, 5), 9, np.uint8)), tmp_path / "rgb.png")
    result = CliRunner().invoke(app_typer, ["info", str(tmp_path / "rgb.png")])
    assert result.exit_code == 0, result.output
    assert "(4, 5)" in result.output
    assert "2D" in result.output

    series = tmp_path / "series"
    series.mkdir()
    hu = np.full((3, 4, 5), -1000)
    hu[1] = 40
    ct_series_writer(
        series,
        hu,
        pixel_spacing=(0.8, 0.7),
        slice_spacing=3.0,
        origin_xyz=(0.0, 0.0, 0.0),
        row_cosine=np.array([1.0, 0.0, 0.0]),
        column_cosine=np.array([0.0, 1.0, 0.0]),
        rng=rng,
    )
    result = CliRunner().invoke(app_typer, ["info", str(series)])
    assert result.exit_code == 0, result.output
    assert "-1000 .. 40" in result.output
    assert "LPS" in result.output


def test_info_error_via_cli_runner(tmp_path: Path):
    result = CliRunner().invoke(app_typer, ["info", str(tmp_path / "absent.nii.gz")])
    assert result.exit_code == 1
    assert isinstance(result.exception, ImageReadError)


def test_console_script_error_is_one_line(tmp_path: Path):
    script = shutil.which("medseg")
    if script is None:
        pytest.skip("medseg console script not installed")
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("not an image")
    proc = subprocess.run([script, "info", str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert str(bad) in lines[0]
    assert proc.stdout == ""
