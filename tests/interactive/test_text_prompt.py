"""Text as a prompt in a multi-object session: the selection, refined by the engine."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.interactive.classical import RandomWalkerEngine
from medseg.interactive.multi import MultiSession
from medseg.interactive.text_prompt import text_prompt
from medseg.io import Image
from medseg.text import QueryError

NAMES = {1: "lesion", 2: "liver"}


def _case() -> tuple[Image, np.ndarray]:
    """Two bright balls (lesions) in a grey slab (liver); the big one on the patient's left."""
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:16, :32, :32]
    big = (z - 8) ** 2 + (y - 16) ** 2 + (x - 24) ** 2 <= 16
    small = (z - 8) ** 2 + (y - 16) ** 2 + (x - 7) ** 2 <= 4
    liver = (y > 4) & (y < 28)
    image = 50.0 * liver + 100.0 * (big | small) + rng.normal(0, 3, big.shape)
    labels = np.where(big | small, 1, np.where(liver, 2, 0)).astype(np.uint8)
    return Image.from_array(image[None].astype(np.float32)), labels


def test_phrase_becomes_a_box_prompt_that_the_engine_refines() -> None:
    image, labels = _case()
    multi = MultiSession(image, RandomWalkerEngine())
    multi.start_from(labels)
    result = text_prompt(
        multi, "the largest lesion on the left", NAMES, engine=RandomWalkerEngine()
    )
    assert result.label == 1
    assert result.refined
    selected = result.selection.mask
    assert int(selected.sum()) == int((labels == 1)[:, :, 16:].sum())  # the big ball only
    refined = multi.labels == 1
    dice = 2 * (refined & selected)[:, :, 16:].sum() / (refined[:, :, 16:].sum() + selected.sum())
    assert dice > 0.8
    assert refined[:, :, :16].sum() == (labels == 1)[:, :, :16].sum()  # the small ball untouched
    multi.undo()
    assert np.array_equal(multi.labels, labels)


def test_refinement_moves_an_oversegmented_selection_towards_the_object() -> None:
    from scipy import ndimage

    image, labels = _case()
    truth = labels == 1
    sloppy = labels.copy()
    big = truth.copy()
    big[:, :, :16] = False
    sloppy[ndimage.binary_dilation(big, iterations=2) & ~truth] = 1  # 2 voxels too wide
    multi = MultiSession(image, RandomWalkerEngine())
    multi.start_from(sloppy)
    result = text_prompt(multi, "the largest lesion", NAMES, engine=RandomWalkerEngine())

    def dice(a: np.ndarray) -> float:
        return float(2 * (a & big).sum() / (a.sum() + big.sum()))

    refined = (multi.labels == 1) & result.selection.mask
    assert dice(refined) > dice(result.selection.mask) + 0.1


def test_selection_moves_to_another_object_without_refining() -> None:
    image, labels = _case()
    multi = MultiSession(image, RandomWalkerEngine(), overwrite=True)
    multi.start_from(labels)
    result = text_prompt(multi, "the smallest lesion", NAMES, label=3, refine=False)
    assert result.label == 3
    assert np.array_equal(multi.labels == 3, result.selection.mask)
    assert int((multi.labels == 1).sum()) == int((labels == 1).sum() - result.selection.mask.sum())


def test_nothing_selected_or_several_classes_are_errors() -> None:
    image, labels = _case()
    multi = MultiSession(image, RandomWalkerEngine())
    multi.start_from(labels)
    with pytest.raises(QueryError, match="selects nothing"):
        text_prompt(multi, "lesions over 100 ml", NAMES)
    with pytest.raises(QueryError, match="several classes"):
        text_prompt(multi, "the liver and the largest lesion", NAMES)
