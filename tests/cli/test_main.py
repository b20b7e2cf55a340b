"""The ``medseg`` entry point: version, help, and one-line errors instead of tracebacks."""

import subprocess
import sys

from typer.testing import CliRunner

from medseg import __version__
from medseg.cli.main import app_typer


def test_version_prints_package_version():
    result = CliRunner().invoke(app_typer, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"medseg {__version__}"


def test_help_lists_commands():
    result = CliRunner().invoke(app_typer, ["--help"])
    assert result.exit_code == 0
    assert "info" in result.stdout


def test_user_error_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "missing.nii.gz"
    proc = subprocess.run(
        [sys.executable, "-c", "from medseg.cli.main import app; app()", "info", str(missing)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert str(missing) in lines[0]


def test_typer_exit_code_reaches_the_shell(tmp_path):
    """A command that ends with ``typer.Exit(1)`` (check finding errors) exits 1 from the script."""
    import numpy as np

    from medseg.data import write_dataset_json
    from medseg.io import Image, write_image

    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    write_dataset_json(
        tmp_path,
        channel_names={0: "T1"},
        labels={"background": 0, "tissue": 1},
        num_training=1,
        file_ending=".nii.gz",
    )
    image = Image.from_array(np.zeros((1, 4, 5, 6), np.float32))
    write_image(image, tmp_path / "imagesTr" / "case_000_0000.nii.gz")  # no label: an error
    proc = subprocess.run(
        [sys.executable, "-c", "from medseg.cli.main import app; app()", "check", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
