"""AUC and NoC on hand-computed sequences."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.interactive.metrics import interaction_auc, iou_from_dice, number_of_clicks


def test_auc_is_the_trapezoid_with_unit_steps() -> None:
    # (0.5 + 0.7) / 2 + (0.7 + 0.9) / 2 = 0.6 + 0.8
    assert interaction_auc([0.5, 0.7, 0.9]) == pytest.approx(1.4)
    assert interaction_auc([1.0] * 6) == pytest.approx(5.0)


def test_auc_ignores_trailing_steps_not_run_and_short_sequences() -> None:
    assert interaction_auc([0.2, 0.4, np.nan]) == pytest.approx(0.3)
    assert interaction_auc([0.9]) == 0.0


def test_noc_counts_clicks_to_the_threshold() -> None:
    ious = [0.5, 0.8, 0.86, 0.91, 0.95]
    assert number_of_clicks(ious, 0.85) == 3
    assert number_of_clicks(ious, 0.90) == 4


def test_noc_is_capped_when_never_reached() -> None:
    assert number_of_clicks([0.1, 0.2, 0.3], 0.9, max_clicks=20) == 20
    assert number_of_clicks([0.1, 0.2, 0.95], 0.9, max_clicks=2) == 2


def test_iou_from_dice_matches_the_set_definition() -> None:
    a = np.zeros(10, bool)
    b = np.zeros(10, bool)
    a[:6], b[3:8] = True, True
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert iou_from_dice(dice) == pytest.approx((a & b).sum() / (a | b).sum())
