"""What medseg prints or documents cites only what ships with it.

No reference to the development notes that live outside the repository (design, metric and
anchor notes), and every relative link in README.md and docs/*.md opens a file of the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(
    r"\b(ANCHORS|METRICS|DESIGN|STYLE|INTERACTIVE|LITERATURE)\.(md|txt)\b"
    r"|\bDESIGN [AB]\d|/work/|\bshared/"
)
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def _files() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "src").rglob("*.py")),
        *sorted((ROOT / "src").rglob("*.html")),
        *sorted((ROOT / "benchmarks").glob("*.py")),
        ROOT / "benchmarks" / "RESULTS.md",  # linked from the README
        *sorted(p for p in (ROOT / ".ci").iterdir() if p.is_file()),
    ]


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_outside_the_repository(path: Path) -> None:
    hits = [
        f"{number}: {line.strip()}"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits, f"{path.name} cites files that do not ship with medseg: {hits}"


def test_the_pattern_finds_outside_references() -> None:
    for text in ("see METRICS.md §10", "(ANCHORS.md)", "DESIGN A5", "/work/shared/x"):
        assert OUTSIDE.search(text), text
    assert not OUTSIDE.search("docs/evaluate.md, Empty masks")


@pytest.mark.parametrize(
    "path",
    [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
    ids=lambda p: p.name,
)
def test_relative_links_open_a_file(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    targets = [m.group(1) for m in LINK.finditer(text) if "://" not in m.group(1)]
    missing = [t for t in targets if not (path.parent / t).exists()]
    assert not missing, f"{path.name} links to missing files: {missing}"
