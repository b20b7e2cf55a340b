"""evaluate_case: classes, regions, statuses, options, ignore label, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.errors import ConfigError, GeometryError
from medseg.evaluate import MetricOptions, dice, evaluate_case, hd95, normalized_surface_dice


def _maps():
    ref = np.zeros((10, 16, 16), np.uint8)
    ref[2:8, 2:8, 2:8] = 1
    ref[2:8, 9:14, 9:14] = 2
    pred = np.roll(ref, 1, axis=2)
    return pred, ref


def test_rows_per_class_and_region_match_the_pure_functions():
    pred, ref = _maps()
    spacing = (2.0, 0.9, 0.9)
    classes = {"a": 1, "b": 2, "both": (1, 2), "absent": 3}
    result = evaluate_case(pred, ref, spacing, classes, options=MetricOptions(nsd_tolerance_mm=1.0))
    rows = {r["class"]: r for r in result.rows}
    assert list(rows) == ["a", "b", "both", "absent"]
    assert rows["a"]["dice"] == pytest.approx(dice(pred == 1, ref == 1))
    assert rows["b"]["hd95"] == pytest.approx(hd95(pred == 2, ref == 2, spacing))
    union_p, union_r = pred > 0, ref > 0
    assert rows["both"]["nsd"] == pytest.approx(
        normalized_surface_dice(union_p, union_r, spacing, 1.0)
    )
    assert rows["a"]["status"] == "ok"
    assert rows["absent"]["status"] == "both_empty"
    assert math.isnan(rows["absent"]["dice"])
    assert result.calibration is None


def test_one_sided_empty_class():
    pred, ref = _maps()
    pred[pred == 2] = 0
    row = evaluate_case(pred, ref, (1, 1, 1), {"b": 2}).rows[0]
    assert row["status"] == "pred_empty"
    assert row["dice"] == 0.0
    assert row["hd"] == math.inf
    assert "nsd" not in row  # no tolerance given: no silent default


def test_per_class_tolerance_and_missing_one():
    pred, ref = _maps()
    options = MetricOptions(nsd_tolerance_mm={"a": 0.5, "b": 5.0})
    rows = evaluate_case(pred, ref, (1, 1, 1), {"a": 1, "b": 2}, options=options).rows
    assert rows[0]["nsd"] < rows[1]["nsd"] == 1.0
    with pytest.raises(ConfigError, match="tolerance"):
        evaluate_case(pred, ref, (1, 1, 1), {"c": 1}, options=options)


def test_ignore_label_removes_voxels():
    pred, ref = _maps()
    ref = ref.copy()
    ref[:, :, 8] = 9  # a stripe that the prediction partly covers
    with_ignore = evaluate_case(
        pred, ref, (1, 1, 1), {"a": 1}, options=MetricOptions(ignore_label=9)
    ).rows[0]
    assert with_ignore["dice"] == pytest.approx(dice((pred == 1) & (ref != 9), ref == 1))


def test_calibration_and_errors():
    pred, ref = _maps()
    probs = np.eye(3)[pred].transpose(3, 0, 1, 2).astype(np.float32)
    result = evaluate_case(pred, ref, (1, 1, 1), {"a": 1}, probabilities=probs)
    assert result.calibration.ece == pytest.approx(1 - np.mean(pred[ref > 0] == ref[ref > 0]))
    with pytest.raises(GeometryError, match="shape"):
        evaluate_case(pred[:-1], ref, (1, 1, 1), {"a": 1})
    with pytest.raises(ConfigError, match="classes"):
        evaluate_case(pred, ref, (1, 1, 1), {})


def test_2d_label_maps():
    ref = np.zeros((20, 20), np.uint8)
    ref[4:12, 4:12] = 1
    pred = np.roll(ref, 2, axis=0)
    row = evaluate_case(pred, ref, (0.5, 0.5), {"a": 1}).rows[0]
    assert row["dice"] == pytest.approx(0.75)
    assert row["hd"] == pytest.approx(1.0)
    assert "betti2_error" not in row
