"""Post-processing rules and their selection on synthetic cross-validation predictions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.errors import ConfigError
from medseg.infer.postprocessing import (
    PostprocessingRules,
    apply_postprocessing,
    load_postprocessing,
    save_postprocessing,
    select_postprocessing,
)


def _blobs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros((20, 20, 20), np.uint8)
    for _ in range(6):
        z, y, x = rng.integers(0, 18, 3)
        labels[z : z + 2, y : y + 3, x : x + 2] = rng.integers(1, 3)
    return labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_keep_largest_matches_scipy_label(seed):
    labels = _blobs(seed)
    out = apply_postprocessing(labels, PostprocessingRules(keep_largest=(1,)))
    components, _n = ndimage.label(labels == 1, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(components.ravel())[1:]
    expected = labels.copy()
    expected[(labels == 1) & (components != 1 + int(np.argmax(sizes)))] = 0
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(labels, _blobs(seed))  # input untouched


def test_keep_largest_foreground_treats_labels_together():
    labels = np.zeros((10, 10), np.uint8)
    labels[1:4, 1:3] = 1
    labels[1:4, 3:5] = 2  # touches label 1: one foreground component of 12 pixels
    labels[8, 8] = 2
    out = apply_postprocessing(labels, PostprocessingRules(keep_largest_foreground=True))
    assert out[8, 8] == 0
    np.testing.assert_array_equal(out[:5], labels[:5])


def test_fill_holes_fills_background_only():
    labels = np.zeros((9, 9, 9), np.uint8)
    labels[1:8, 1:8, 1:8] = 2
    labels[3:6, 3:6, 3:6] = 0
    labels[4, 4, 4] = 1
    out = apply_postprocessing(labels, PostprocessingRules(fill_holes=(2,)))
    assert out[4, 4, 4] == 1
    assert (out[3:6, 3:6, 3:6] != 0).all()
    assert out[0, 0, 0] == 0


def _cases():
    """Class 1: one true ball + a false blob far away (LCC helps). Class 2: two true blobs (LCC
    hurts). Class 2's prediction also misses a cavity inside it (hole filling helps)."""
    preds, refs = [], []
    for shift in range(3):
        ref = np.zeros((24, 24, 24), np.uint8)
        ref[2 + shift : 9 + shift, 2:9, 2:9] = 1
        ref[14:20, 2:8, 14:20] = 2
        ref[14:17, 16:19, 2:5] = 2
        pred = ref.copy()
        pred[20:22, 20:22, 20 - shift : 22] = 1  # spurious component of class 1
        pred[16:18, 4:6, 16:18] = 0  # hole inside the large class-2 blob
        preds.append(pred)
        refs.append(ref)
    return preds, refs


def test_selection_accepts_lcc_where_it_helps_and_rejects_where_it_hurts():
    preds, refs = _cases()
    rules, steps = select_postprocessing(preds, refs, [1, 2])
    assert rules.keep_largest == (1,)
    assert rules.fill_holes == (2,)
    assert not rules.keep_largest_foreground
    by_key = {(s.step, s.label): s for s in steps}
    assert by_key["keep_largest", 1].dice_after > by_key["keep_largest", 1].dice_before
    assert by_key["keep_largest", 2].dice_after < by_key["keep_largest", 2].dice_before
    assert not by_key["keep_largest", 2].accepted
    after = [apply_postprocessing(p, rules) for p in preds]
    np.testing.assert_array_equal(after[0], refs[0])


def test_rules_json_round_trip_and_validation(tmp_path):
    rules = PostprocessingRules(keep_largest=(1, 3), fill_holes=(2,))
    save_postprocessing(rules, tmp_path)
    assert load_postprocessing(tmp_path) == rules
    assert load_postprocessing(tmp_path / "missing").is_empty
    (tmp_path / "postprocessing.json").write_text('{"keep_largets": [1]}')
    with pytest.raises(ConfigError, match="keep_largets"):
        load_postprocessing(tmp_path)


def test_selection_dice_agrees_with_medseg_evaluate():
    from medseg.evaluate import dice
    from medseg.infer.postprocessing import _mean_dice

    preds, refs = _cases()
    expected = np.nanmean([dice(p == 1, r == 1) for p, r in zip(preds, refs, strict=True)])
    assert _mean_dice(preds, refs, 1, None) == pytest.approx(expected)
