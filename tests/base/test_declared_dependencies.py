"""Every third-party module that src/medseg imports is declared in pyproject.toml.

A module that is only present because something else pulled it in (click through uvicorn, in the
dev extras) works in CI and fails on a user's ``pip install -e .``; this test finds it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "medseg"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _normalise(re.split(r"[\s<>=!~;\[]", spec.strip(), maxsplit=1)[0])


def _declared() -> tuple[set[str], set[str]]:
    """Distribution names in ``dependencies``, and in the extras other than ``dev``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {_requirement_name(spec) for spec in project["dependencies"]}
    extras = {
        _requirement_name(spec)
        for extra, specs in project.get("optional-dependencies", {}).items()
        if extra != "dev"
        for spec in specs
    }
    return core, extras


def _imports() -> dict[str, list[str]]:
    """Top-level module name -> files of src/medseg that import it (absolute imports only)."""
    found: dict[str, list[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "medseg" and top not in sys.stdlib_module_names:
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_imported_module_is_declared() -> None:
    core, extras = _declared()
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, files in _imports().items():
        names = {_normalise(name) for name in distributions.get(module, [module])}
        if not names & (core | extras):
            undeclared[module] = files
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_click_is_not_imported() -> None:
    """Typer 0.26+ no longer depends on click: medseg must not import it."""
    assert "click" not in _imports()
