"""The plain-language summary: a few sentences built from the findings by fixed templates.

No language model is involved: every sentence comes from a template below, so the same findings
always give the same words. Findings that are absent ("No lesion was found."), flagged or
uncertain get their own wording. :data:`Summariser` is the type of an optional user-supplied
local function that receives the report's JSON dictionary and returns its own text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from medseg.report.findings import Findings
from medseg.report.lesions import Lesion
from medseg.report.longitudinal import Change

Summariser = Callable[[dict[str, Any]], str]
"""A local function from the report's JSON dictionary to a text, e.g. a local language model."""

_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
MAX_LISTED = 6
"""Without lesion classes the summary names at most this many structures with their volumes."""
_SIDES = {"left": "on the left", "right": "on the right", "midline": "at the midline"}


def plain_summary(findings: Findings) -> str:
    """A few sentences a patient or referring physician can read, from ``findings`` only."""
    if not findings.found_anything:
        return "Nothing was found: the segmentation is empty."
    sentences = []
    if not findings.burden:
        present = [s for s in findings.structures if s.voxels]
        listed = [f"{_words(s.name)} ({_ml(s.volume_ml)})" for s in present[:MAX_LISTED]]
        more = len(present) - len(listed)
        tail = f" and {_count(more)} more" if more > 0 else ""
        sentences.append(f"Segmented: {_join(listed)}{tail}.")
    for burden in findings.burden:
        lesions = findings.lesions.select(label=burden.label)
        sentences.append(_lesion_sentence(_words(burden.name), list(lesions)))
    if findings.change is not None:
        sentences.append(_change_sentence(findings.change))
    sentences.extend(_flag_sentences(findings))
    return " ".join(sentences)


def _lesion_sentence(name: str, lesions: list[Lesion]) -> str:
    if not lesions:
        return f"No {name} was found."
    total = sum(lesion.volume_ml for lesion in lesions)
    where = Counter(lesion.structure for lesion in lesions if lesion.structure)
    place = f" in the {_join([_words(s) for s, _ in where.most_common(2)])}" if where else ""
    largest = max(lesions, key=lambda lesion: lesion.volume_ml)
    size = f"{_ml(largest.volume_ml)} ({largest.long_axis_mm:.0f} × {largest.short_axis_mm:.0f} mm)"
    side = _SIDES[largest.side]
    if len(lesions) == 1:
        return f"One {name}{place}, {size}, {side}."
    count = _count(len(lesions)).capitalize()
    return (
        f"{count} {_plural(name)}{place}, {_ml(total)} in total; the largest, {size}, lies {side}."
    )


def _change_sentence(change: Change) -> str:
    parts = [
        f"{_count(change.new)} new {_plural('lesion', change.new)}",
        f"{_count(change.resolved) if change.resolved else 'none'} resolved",
    ]
    if change.total_change_percent is None:
        prior = "which showed no lesion"
        return f"Compared with the prior scan, {prior}: {parts[0]}."
    parts.append(f"total volume {change.total_change_percent:+.0f} %")
    return f"Compared with the prior scan: {', '.join(parts)}."


def _flag_sentences(findings: Findings) -> list[str]:
    out = []
    empty = [_words(f.target) for f in findings.flags if f.code == "empty_structure"]
    if empty:
        out.append(f"No {_join(empty)} was segmented; check the image and the model.")
    ranged = [_words(f.target) for f in findings.flags if f.code == "volume_out_of_range"]
    if ranged:
        out.append(f"The volume of the {_join(ranged)} is unusual for the training data; check it.")
    border = [f.target for f in findings.flags if f.code == "lesion_at_border"]
    if border:
        out.append(
            f"{_join(border).capitalize()} {'touches' if len(border) == 1 else 'touch'} the image "
            "border and may be larger than measured."
        )
    if any(f.code == "overlapping_segments" for f in findings.flags):
        out.append(
            "Segments overlapped in the DICOM Segmentation; each overlapping voxel was counted "
            "for the higher-numbered segment."
        )
    unsure = [_words(f.target) for f in findings.flags if f.code == "low_confidence"]
    if unsure:
        out.append(
            f"The model is uncertain about {_join(unsure)}; treat these findings with caution."
        )
    return out


def _words(name: str) -> str:
    return name.replace("_", " ").strip()


def _plural(noun: str, n: int = 2) -> str:
    if n == 1:
        return noun
    if noun.endswith("sis"):  # metastasis -> metastases
        return noun[:-2] + "es"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def _count(n: int) -> str:
    return _NUMBERS[n] if n < len(_NUMBERS) else str(n)


def _ml(volume: float) -> str:
    return f"{volume:.1f} ml" if volume >= 0.1 else f"{volume:.2f} ml"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
