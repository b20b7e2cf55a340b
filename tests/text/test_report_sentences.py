"""Every sentence the report's summary writes about a lesion, fed back as a query, selects it.

The plural sentence ("Three liver tumors in the liver, 4.1 ml in total; the largest, 2.6 ml
(17 × 17 mm), lies on the right.") names the largest lesion of its class; the singular one
("One lung nodule in the lung, ...") the only one. Random label maps in random storage
orientations, with lesions of distinct sizes inside organs or outside them.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from medseg.io import Image
from medseg.report import LabelInfo, build_report
from medseg.text import build_scene, find, split_sentences

NAMES = {1: "liver", 2: "lung", 3: "kidney_left", 4: "kidney_right", 5: "liver_tumor"}
NAMES |= {6: "lung_nodule"}
ORGANS = {1: ((4, 20), (4, 24), (4, 22)), 2: ((8, 18), (4, 24), (26, 44))}
ORGANS |= {3: ((2, 12), (26, 34), (30, 38)), 4: ((2, 12), (26, 34), (8, 16))}


def random_case(seed: int) -> Image:
    """Organs, then 1-4 lesions per lesion class with distinct box sizes, in a random storage."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((24, 36, 48), dtype=np.uint8)
    for value, box in ORGANS.items():
        labels[tuple(slice(a, b) for a, b in box)] = value
    taken = np.zeros(labels.shape, dtype=bool)
    sizes = iter(rng.permutation([(a, b, c) for a in (2, 3, 4) for b in (2, 3) for c in (2, 3, 5)]))
    for value in (5, 6):
        for _ in range(int(rng.integers(1, 5))):
            size = next(sizes)
            for _attempt in range(50):
                start = [
                    int(rng.integers(0, n - s)) for n, s in zip(labels.shape, size, strict=True)
                ]
                box = tuple(slice(a, a + s) for a, s in zip(start, size, strict=True))
                grown = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
                if not taken[grown].any():
                    labels[box] = value
                    taken[box] = True
                    break
    flips = [bool(f) for f in rng.integers(0, 2, 3)]
    perm = (0, *rng.permutation([1, 2]).tolist())
    spacing = np.array([3.0, 2.0, 1.5])
    origin, direction = np.array([-20.0, 35.0, 8.0]), np.eye(3)
    for axis, flipped in enumerate(flips):
        if flipped:
            origin[axis] += (labels.shape[axis] - 1) * spacing[axis]
            direction[:, axis] *= -1
            labels = np.flip(labels, axis)
    stored = np.ascontiguousarray(labels.transpose(perm))
    return Image(
        array=stored[None],
        spacing=tuple(spacing[list(perm)]),
        origin=tuple(origin),
        direction=direction[:, list(perm)],
    )


@pytest.mark.parametrize("seed", range(24))
def test_summary_sentences_select_their_lesion(seed: int) -> None:
    seg = random_case(seed)
    report = build_report(seg, seg, labels=LabelInfo(names=NAMES))
    scene = build_scene(seg, names=NAMES)
    checked = 0
    for sentence in split_sentences(report.summary):
        if not re.search(r"\d ml \(", sentence):
            continue
        value = 5 if "liver tumor" in sentence else 6
        lesions = [lesion for lesion in scene.table if lesion.label == value]
        largest = max(lesions, key=lambda lesion: lesion.volume_ml)
        selection = find(scene, sentence)
        chosen = [inst.lesion.lesion_id for inst in selection.instances if inst.lesion]
        assert chosen == [largest.lesion_id], (sentence, selection.to_dict())
        expected = scene.components[largest.lesion_id - 1]
        want = np.zeros(scene.labels.shape, dtype=bool)
        want[expected.box] = expected.mask
        assert np.array_equal(selection.mask, want)
        checked += 1
    assert checked == 2, report.summary


def test_plural_sentence_keeps_its_group_as_context() -> None:
    seg = random_case(3)
    report = build_report(seg, seg, labels=LabelInfo(names=NAMES))
    scene = build_scene(seg, names=NAMES)
    plural = next(s for s in split_sentences(report.summary) if "in total" in s)
    explanation = find(scene, plural).to_dict()
    assert explanation["clauses"][0]["context_only"] is True
    assert len(explanation["clauses"][-1]["selected"]) == 1
