"""The separately written paraphrase set: its hit rate (reported in benchmarks/RESULTS.md).

A hit is a phrase that selects exactly the expected voxels. The floor asserted here is below
the measured rate, so that a change that loses paraphrases fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from text_phantom import NAMES, VARIANTS, canonical_labels, canonical_object

from medseg.io import Image
from medseg.text import QueryError, build_scene, find

SET = json.loads((Path(__file__).parent / "paraphrase_set.json").read_text(encoding="utf-8"))
FLOOR = 0.9
HELD_OUT_FLOOR = 0.9


def paraphrase_hits(part: str = "groups") -> tuple[int, int, list[str]]:
    """(hits, total, misses) of one part of the set on the x-flipped synthetic abdomen."""
    store, direction, spacing, origin = VARIANTS["x_flipped"]
    scene = build_scene(
        Image(store(canonical_labels())[None], spacing, origin, direction), names=NAMES
    )
    hits, total, misses = 0, 0, []
    for group in SET[part]:
        want = np.zeros(canonical_labels().shape, dtype=bool)
        for name in group["answer"].split():
            want |= canonical_object(name)
        want = store(want)
        for phrase in group["phrases"]:
            total += 1
            try:
                ok = np.array_equal(find(scene, phrase).mask, want)
            except QueryError as err:
                ok, why = False, str(err)
            else:
                why = "other voxels"
            hits += ok
            if not ok:
                misses.append(f"{phrase!r}: {why}")
    return hits, total, misses


def test_paraphrase_hit_rate() -> None:
    hits, total, misses = paraphrase_hits()
    assert total >= 100
    assert hits / total >= FLOOR, f"{hits}/{total}\n" + "\n".join(misses)


def test_held_out_paraphrase_hit_rate() -> None:
    hits, total, misses = paraphrase_hits("held_out")
    assert total >= 40
    assert hits / total >= HELD_OUT_FLOOR, f"{hits}/{total}\n" + "\n".join(misses)
