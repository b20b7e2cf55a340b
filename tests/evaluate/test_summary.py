"""Aggregation: NaN excluded and counted, inf distances at the image diagonal, seeded CI."""

from __future__ import annotations

import math

import pytest

from medseg.evaluate import summarize


def _rows():
    return [
        {
            "case": "a",
            "class": "x",
            "status": "ok",
            "dice": 0.8,
            "hd95": 2.0,
            "image_diagonal_mm": 50.0,
        },
        {
            "case": "b",
            "class": "x",
            "status": "ok",
            "dice": 0.6,
            "hd95": 4.0,
            "image_diagonal_mm": 50.0,
        },
        {
            "case": "c",
            "class": "x",
            "status": "pred_empty",
            "dice": 0.0,
            "hd95": math.inf,
            "image_diagonal_mm": 60.0,
        },
        {
            "case": "d",
            "class": "x",
            "status": "both_empty",
            "dice": math.nan,
            "hd95": math.nan,
            "image_diagonal_mm": 60.0,
        },
    ]


def test_statistics_and_counts():
    stats = summarize(_rows())["x"]
    assert stats["status_counts"] == {"ok": 2, "both_empty": 1, "ref_empty": 0, "pred_empty": 1}
    assert stats["dice"]["mean"] == pytest.approx(1.4 / 3)
    assert stats["dice"]["n"] == 3
    assert stats["dice"]["n_nan"] == 1
    assert stats["hd95"]["mean"] == pytest.approx((2 + 4 + 60) / 3)
    assert stats["hd95"]["n_inf"] == 1
    assert stats["hd95"]["median"] == pytest.approx(4.0)
    low, high = stats["dice"]["ci95_low"], stats["dice"]["ci95_high"]
    assert 0.0 <= low <= stats["dice"]["mean"] <= high <= 0.8 + 1e-12


def test_bootstrap_is_seeded():
    rows = [
        {"case": str(i), "class": "x", "status": "ok", "dice": v, "image_diagonal_mm": 9.0}
        for i, v in enumerate([0.91, 0.5, 0.77, 0.62, 0.85, 0.7, 0.95, 0.4, 0.66, 0.8])
    ]
    assert summarize(rows, seed=1) == summarize(rows, seed=1)
    assert summarize(rows, seed=1)["x"]["dice"] != summarize(rows, seed=2)["x"]["dice"]
