"""Usage errors on every command: one line on stderr, exit code 2, no traceback.

Run through the console entry point :func:`medseg.cli.main.app` (what the ``medseg`` script
calls), not through Typer's test runner, which would catch the errors itself.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from medseg.cli.main import app, app_typer


def _leaf_commands() -> list[list[str]]:
    """The word path of every command, e.g. ``["example", "brain"]``."""
    found: list[list[str]] = []

    def walk(command, words: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*words, name])
        else:
            found.append(words)

    walk(typer.main.get_command(app_typer), [])
    return found


COMMANDS = _leaf_commands()


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, argv: list[str]):
    monkeypatch.setattr(sys, "argv", ["medseg", *argv])
    with pytest.raises(SystemExit) as info:
        app()
    return info.value.code, capsys.readouterr()


def test_every_command_is_found() -> None:
    assert ["evaluate"] in COMMANDS
    assert ["example", "brain"] in COMMANDS
    assert len(COMMANDS) >= 13


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_mistyped_option_is_one_line_exit_2(monkeypatch, capsys, words: list[str]) -> None:
    code, captured = _run(monkeypatch, capsys, [*words, "--no-such-option"])
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1, captured.err
    assert "--no-such-option" in lines[0]
    assert f"medseg {' '.join(words)}" in lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["evaluate", "preds/"], "Missing argument"),
        (["train", "dataset/"], "Missing option"),
        (["predict", "model/", "in.nii.gz", "-o", "out/", "--folds", "0,x"], "--folds"),
        (["plan", "dataset/", "--device", "tpu"], "--device"),
        (["evaluate", "p/", "r/", "--workers", "many"], "--workers"),
        (["nonsense"], "No such command"),
    ],
)
def test_usage_errors_name_the_problem(monkeypatch, capsys, argv, expected: str) -> None:
    code, captured = _run(monkeypatch, capsys, argv)
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1, captured.err
    assert expected in lines[0]


def test_usage_error_from_the_installed_script_has_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from medseg.cli.main import app; app()", "evaluate", "--outt"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_multi_line_medseg_error_is_printed_on_one_line(monkeypatch, capsys) -> None:
    from medseg.errors import DatasetError

    def fail() -> None:
        raise DatasetError("first line\nsecond line")

    monkeypatch.setattr("medseg.cli.main.app_typer", lambda **_: fail())
    monkeypatch.setattr(sys, "argv", ["medseg", "info", "x"])
    with pytest.raises(SystemExit) as info:
        app()
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 1
    assert err == ["error: first line second line"]


def test_os_error_is_one_line(monkeypatch, capsys) -> None:
    def fail() -> None:
        raise PermissionError(13, "Permission denied", "/root/out")

    monkeypatch.setattr("medseg.cli.main.app_typer", lambda **_: fail())
    monkeypatch.setattr(sys, "argv", ["medseg", "info", "x"])
    with pytest.raises(SystemExit) as info:
        app()
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 1
    assert len(err) == 1
    assert "Permission denied" in err[0]
