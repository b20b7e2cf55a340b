"""Removing small components and choosing the minimum size by lesion-wise F1."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.evaluate.detection import lesion_metrics
from medseg.infer.postprocessing import (
    PostprocessingRules,
    apply_postprocessing,
    load_postprocessing,
    save_postprocessing,
    select_postprocessing,
)
from medseg.infer.small_components import detection_counts, remove_small_components

FULL = np.ones((3, 3, 3))


def _random_labels(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.full((16, 16, 16), 2, np.uint8)  # "white matter" everywhere
    labels[:, :, :2] = 0
    for _ in range(8):
        z, y, x = rng.integers(1, 14, 3)
        a, b, c = rng.integers(1, 4, 3)
        labels[z : z + a, y : y + b, x : x + c] = 3
    return labels


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_small_components_match_scipy_and_take_the_surrounding_label(seed):
    labels = _random_labels(seed)
    out = remove_small_components(labels, 3, 6)
    ids, _ = ndimage.label(labels == 3, structure=FULL)
    sizes = np.bincount(ids.ravel())
    small = np.isin(ids, np.flatnonzero(sizes < 6)) & (ids > 0)
    np.testing.assert_array_equal(out == 3, (labels == 3) & ~small)
    # removed lesions sit in label 2 here (or touch label 0 at the border)
    assert set(np.unique(out[small])) <= {0, 2}
    np.testing.assert_array_equal(out[~small], labels[~small])
    np.testing.assert_array_equal(labels, _random_labels(seed))  # input untouched


def test_removing_the_only_label_everywhere_gives_background():
    labels = np.full((3, 3), 1, np.uint8)
    np.testing.assert_array_equal(remove_small_components(labels, 1, 100), 0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_detection_counts_agree_with_medseg_evaluate(seed):
    ref = _random_labels(seed) == 3
    pred = _random_labels(seed + 10) == 3
    pred |= ref & (np.random.default_rng(seed).random(ref.shape) < 0.8)
    tp, fp, fn = detection_counts(pred, ref)
    expected = lesion_metrics(pred, ref)
    assert (tp, fp, fn) == (expected["lesion_tp"], expected["lesion_fp"], expected["lesion_fn"])


def _lesion_cases():
    """Two true lesions per case; predictions add 1-2 voxel false positives and find both."""
    preds, refs = [], []
    for shift in range(3):
        ref = np.full((20, 20, 20), 2, np.uint8)
        ref[3 + shift : 7 + shift, 3:7, 3:7] = 3
        ref[12:15, 12:15, 12 + shift : 15 + shift] = 3
        pred = ref.copy()
        pred[17, 2, 17] = 3
        pred[2, 17, 9 : 10 + shift % 2] = 3
        preds.append(pred)
        refs.append(ref)
    return preds, refs


def test_min_size_chosen_by_f1_removes_false_positives_only():
    preds, refs = _lesion_cases()
    rules, steps = select_postprocessing(preds, refs, [2, 3])
    step = next(s for s in steps if s.step == "min_component_size" and s.label == 3)
    assert step.metric == "lesion_f1"
    assert step.dice_before == pytest.approx(2 * 6 / (2 * 6 + 6))  # TP 6, FP 6, FN 0
    assert step.dice_after == 1.0
    assert step.accepted
    assert (3, 3) in rules.min_component_size  # smallest size that drops the 2-voxel islands
    for pred, ref in zip(preds, refs, strict=True):
        np.testing.assert_array_equal(apply_postprocessing(pred, rules), ref)


def test_min_size_rejected_when_it_would_remove_true_lesions():
    preds, refs = _lesion_cases()
    refs = [p.copy() for p in preds]  # the islands are real lesions now
    rules, steps = select_postprocessing(preds, refs, [3])
    step = next(s for s in steps if s.step == "min_component_size")
    assert not step.accepted
    assert rules.min_component_size == ()


def test_single_voxels_go_when_validation_shows_no_false_positive():
    preds, refs = _lesion_cases()
    clean = [r.copy() for r in refs]  # found every lesion, no island: no size raises F1
    rules, steps = select_postprocessing(clean, refs, [3])
    step = next(s for s in steps if s.step == "min_component_size")
    assert step.accepted
    assert step.dice_before == step.dice_after == 1.0
    assert rules.min_component_size == ((3, 2),)
    # on new cases that rule drops the one-voxel island and keeps the two-voxel one
    out = apply_postprocessing(preds[1], rules)  # islands of 1 and 2 voxels
    assert out[17, 2, 17] == 2
    assert (out[2, 17, 9:11] == 3).all()


def test_min_component_size_json_round_trip(tmp_path):
    rules = PostprocessingRules(fill_holes=(2,), min_component_size=((3, 8),))
    save_postprocessing(rules, tmp_path)
    assert load_postprocessing(tmp_path) == rules
    assert not rules.is_empty
