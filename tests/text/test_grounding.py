"""Grounding a free-text report: sentences the grammar reads get masks, the others a reason."""

from __future__ import annotations

import numpy as np
import pytest
from text_phantom import NAMES, VARIANTS, canonical_labels, canonical_object

from medseg.io import Image
from medseg.text import build_scene, ground, split_sentences

REPORT = """CT abdomen with contrast.
There is a 2.6 ml tumor in the liver. A second, smaller tumour of 0.77 ml lies anteriorly in the
right hepatic lobe. A metastasis is seen in the left kidney.
Multiple liver lesions; the largest measures 17 x 17 mm.
No lesion in the right kidney. The spleen is unremarkable.
Small hypodense focus in segment VII, too small to characterise.
"""


@pytest.fixture(scope="module")
def grounded():  # type: ignore[no-untyped-def]
    store, direction, spacing, origin = VARIANTS["all_flipped_yx_swapped"]
    image = Image(store(canonical_labels())[None], spacing, origin, direction)
    return ground(build_scene(image, names=NAMES), REPORT), store


def test_sentences_are_split_at_full_stops_not_decimals() -> None:
    sentences = split_sentences(REPORT)
    assert sentences[1] == "There is a 2.6 ml tumor in the liver."
    assert len(sentences) == 8
    assert sentences[2].endswith("lies anteriorly in the right hepatic lobe.")


@pytest.mark.parametrize(
    ("index", "status", "objects"),
    [
        (1, "not_understood", None),  # "CT abdomen with contrast."
        (2, "resolved", "B"),
        (3, "resolved", "A"),
        (4, "resolved", "E"),
        (5, "resolved", "B"),
        (6, "selects_nothing", ""),
        (7, "resolved", "spleen"),
        (8, "not_understood", None),
    ],
)
def test_each_sentence(grounded, index: int, status: str, objects: str | None) -> None:  # type: ignore[no-untyped-def]
    results, store = grounded
    result = results[index - 1]
    assert result.status == status, (result.sentence, result.error)
    if objects is not None:
        assert result.selection is not None
        want = np.zeros(canonical_labels().shape, bool)
        for name in objects.split():
            want |= canonical_object(name)
        assert np.array_equal(result.selection.mask, store(want))
    else:
        assert result.error is not None
        assert result.error.not_understood
