"""Lesion-wise matching on hand-built component layouts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.errors import ConfigError
from medseg.evaluate import lesion_metrics


def _layout():
    ref = np.zeros((10, 30, 30), bool)
    pred = ref.copy()
    ref[2:6, 2:8, 2:8] = True  # lesion A: found exactly
    pred[2:6, 2:8, 2:8] = True
    ref[2:6, 15:21, 2:8] = True  # lesion B: found with a small overlap only (missed)
    pred[2:6, 19:25, 2:8] = True
    ref[2:6, 2:8, 20:26] = True  # lesion C: missed
    pred[7:9, 25:28, 25:28] = True  # false positive
    return pred, ref


def test_counts_f1_and_lesion_dice():
    pred, ref = _layout()
    m = lesion_metrics(pred, ref)
    assert (m["lesion_tp"], m["lesion_fp"], m["lesion_fn"]) == (1, 2, 2)
    assert m["lesion_f1"] == pytest.approx(2 / (2 + 2 + 2))
    assert m["lesion_dice"] == pytest.approx(1.0 / 5)


def test_lower_dice_threshold_matches_the_partial_lesion():
    pred, ref = _layout()
    m = lesion_metrics(pred, ref, match_metric="dice", threshold=0.3)
    assert m["lesion_tp"] == 2  # B overlaps 2 of 6 columns: Dice 1/3 > 0.3


def test_diagonal_touch_depends_on_connectivity():
    ref = np.zeros((6, 6, 6), bool)
    ref[1, 1, 1] = ref[2, 2, 2] = True
    assert lesion_metrics(ref, ref)["lesion_tp"] == 1
    assert lesion_metrics(ref, ref, connectivity="face")["lesion_tp"] == 2


def test_no_lesions_is_nan_and_bad_options_raise():
    empty = np.zeros((4, 4, 4), bool)
    assert math.isnan(lesion_metrics(empty, empty)["lesion_f1"])
    with pytest.raises(ConfigError, match="threshold"):
        lesion_metrics(empty, empty, threshold=1.5)
