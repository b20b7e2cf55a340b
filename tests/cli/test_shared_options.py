"""The shared options of cli/_options.py: one syntax, one meaning, in every command."""

from __future__ import annotations

import pytest
import typer.main

from medseg.cli._options import parse_folds, parse_labels
from medseg.cli.main import app_typer

SHARED = ("--device", "--folds", "--workers", "--threads", "--seed", "--labels")


def test_parse_folds() -> None:
    assert parse_folds("0,1, 2") == [0, 1, 2]
    assert parse_folds("all") == "all"


def test_parse_labels_values_and_names() -> None:
    assert parse_labels("1, tumour,3") == [1, "tumour", 3]
    assert parse_labels(",") == []


def _options_by_command() -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}

    def walk(command, name: str) -> None:
        subs = getattr(command, "commands", None)
        if subs:
            for word, sub in subs.items():
                walk(sub, f"{name} {word}".strip())
            return
        found[name] = {opt: p for p in command.params for opt in getattr(p, "opts", [])}

    walk(typer.main.get_command(app_typer), "")
    return found


# the commands that only read and print (a check, a header); every other command writes
READ_ONLY = {"info", "check", "weak check"}


def test_every_writing_command_takes_dash_o_output() -> None:
    """A new command writes and takes ``-o/--output``, or joins READ_ONLY here on purpose."""
    options = _options_by_command()
    without = {command for command, opts in options.items() if "-o" not in opts}
    assert without == READ_ONLY
    for command, opts in options.items():
        if command not in READ_ONLY:
            assert opts["-o"] is opts["--output"], command
    assert not any("--out" in opts for opts in options.values())


@pytest.mark.parametrize("option", SHARED)
def test_a_shared_option_has_one_spelling(option: str) -> None:
    """Where a command has the option, it is the same parameter: no alias, no short form."""
    for command, options in _options_by_command().items():
        if option in options:
            param = options[option]
            assert list(param.opts) == [option], (command, param.opts)  # type: ignore[attr-defined]
