"""Every ``medseg ...`` command line in README.md and docs/*.md parses against the real CLI.

Lines in fenced code blocks are parsed strictly (command, options, option values, required
arguments, extra arguments), as the shell would hand them over; ``[...]`` marks optional parts
of a synopsis and is parsed as if given. Inline code spans in prose are parsed leniently: the
command and every option must exist. Nothing runs: only the parser sees the arguments.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from medseg.cli.main import app_typer

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE = re.compile(r"`(medseg [^`]+)`")


def _command_lines(path: Path) -> list[tuple[int, str, bool]]:
    """``(line number, command line, strict)`` for each ``medseg`` line of a Markdown file."""
    found: list[tuple[int, str, bool]] = []
    in_code, pending, start = False, "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            text = line.strip().removeprefix("$ ")
            if pending:
                text, pending = pending + " " + text, ""
            elif not text.startswith("medseg "):
                continue
            else:
                start = number
            if text.endswith("\\"):
                pending = text[:-1].strip()
                continue
            found.append((start, text, True))
        else:
            found.extend((number, match, False) for match in INLINE.findall(line))
    return found


def _argv(text: str) -> list[str]:
    """Shell words of a documented line, less the program name, comments, ``[``, ``]``, ``...``."""
    words = shlex.split(text.replace("[", " ").replace("]", " "), comments=True)
    return [word for word in words[1:] if word != "..."]


CASES = [
    pytest.param(line, strict, id=f"{path.name}:{number}")
    for path in DOCUMENTS
    for number, line, strict in _command_lines(path)
]


def _parse(argv: list[str], *, strict: bool) -> None:
    """Resolve the sub-command and let its parser take the arguments (raises on a usage error)."""
    command = typer.main.get_command(app_typer)
    name = "medseg"
    while getattr(command, "commands", None) and argv and not argv[0].startswith("-"):
        word = argv.pop(0)
        assert word in command.commands, f"no command {name} {word}"
        command, name = command.commands[word], f"{name} {word}"
    command.make_context(name, argv, resilient_parsing=not strict)


def test_documents_print_command_lines() -> None:
    assert len(CASES) >= 30, "the extraction found too few command lines"
    assert any("medseg evaluate" in case.values[0] and "-o" in case.values[0] for case in CASES)


@pytest.mark.parametrize(("line", "strict"), CASES)
def test_documented_command_parses(line: str, strict: bool) -> None:
    _parse(_argv(line), strict=strict)


@pytest.mark.parametrize(
    "line",
    [
        "medseg evaluate P R --out results/",  # the old spelling
        "medseg train DATASET",  # -o is required
        "medseg example brain OUT",  # the output is an option
        "medseg predict M I -o O --folds 0,x",  # bad --folds value
        "medseg plan D --device tpu",
    ],
)
def test_wrong_command_lines_fail(line: str) -> None:
    with pytest.raises(Exception, match=r".") as info:
        _parse(_argv(line), strict=True)
    assert type(info.value).__name__ in {
        "NoSuchOption",
        "MissingParameter",
        "UsageError",
        "BadParameter",
    }


def _all_options() -> set[str]:
    found = {"--help"}

    def walk(command) -> None:
        for param in command.params:
            found.update(getattr(param, "opts", []), getattr(param, "secondary_opts", []))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app_typer))
    return found


def test_every_option_named_in_the_docs_exists() -> None:
    """``--name`` in a code span of the docs is an option of some command (prose included).

    Spans that run another program (``torchrun ...``, ``ray start ...``, ``python bench.py ...``)
    name that program's options and are left out.
    """
    known = _all_options()
    unknown = set()
    for path in DOCUMENTS:
        prose = re.sub(r"^ *```.*?^ *```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
        for span in re.findall(r"`([^`]+)`", prose):
            if not span.startswith(("medseg ", "--")):
                continue
            for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*(?![\w-])", span):
                if option not in known:
                    unknown.add((path.name, option))
    assert not unknown
