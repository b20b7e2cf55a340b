"""Overlap and volume metrics against scikit-learn and hand counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.errors import GeometryError
from medseg.evaluate import confusion, dice, overlap_metrics, volume_metrics


def test_against_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    pred, ref = rng.random((10, 12, 9)) > 0.6, rng.random((10, 12, 9)) > 0.5
    ours = overlap_metrics(confusion(pred, ref))
    p, r = pred.ravel(), ref.ravel()
    assert ours["dice"] == pytest.approx(metrics.f1_score(r, p))
    assert ours["iou"] == pytest.approx(metrics.jaccard_score(r, p))
    assert ours["precision"] == pytest.approx(metrics.precision_score(r, p))
    assert ours["sensitivity"] == pytest.approx(metrics.recall_score(r, p))
    assert ours["specificity"] == pytest.approx(metrics.recall_score(~r, ~p))
    assert ours["accuracy"] == pytest.approx(metrics.accuracy_score(r, p))
    assert ours["mcc"] == pytest.approx(metrics.matthews_corrcoef(r, p))


def test_dice_of_boxes_offset():
    a = np.zeros((20, 20, 20), bool)
    b = a.copy()
    a[2:12, 2:10, 2:10] = True
    b[5:15, 2:10, 2:10] = True
    assert dice(a, b) == pytest.approx(1 - 3 / 10)


def test_empty_rules():
    empty = np.zeros((5, 5), bool)
    some = empty.copy()
    some[1:3, 1:3] = True
    assert math.isnan(dice(empty, empty))
    assert dice(empty, some) == 0.0
    assert dice(some, empty) == 0.0
    ref_empty = overlap_metrics(confusion(some, empty))
    assert math.isnan(ref_empty["sensitivity"])
    assert ref_empty["precision"] == 0.0


def test_volumes_in_ml():
    pred = np.zeros((10, 10, 10), bool)
    ref = pred.copy()
    ref[:5, :4, :5] = True  # 100 voxels
    pred[:5, :5, :5] = True  # 125 voxels
    v = volume_metrics(confusion(pred, ref), (2.0, 1.0, 0.5))  # 1 mm³ voxels
    assert v["ref_volume_ml"] == pytest.approx(0.1)
    assert v["pred_volume_ml"] == pytest.approx(0.125)
    assert v["abs_volume_error_ml"] == pytest.approx(0.025)
    assert v["rel_volume_error"] == pytest.approx(0.25)


def test_dice_rejects_label_maps():
    with pytest.raises(GeometryError, match="bool"):
        dice(np.zeros((3, 3), int), np.zeros((3, 3), bool))
