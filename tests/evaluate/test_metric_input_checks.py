"""Bad ``spacing`` given to the metric functions is a GeometryError naming the problem."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import GeometryError
from medseg.evaluate import compute_surface_distances, evaluate_case
from medseg.evaluate._checks import check_spacing
from medseg.evaluate.overlap import confusion, volume_metrics


def _masks() -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((6, 7, 8), bool)
    ref[2:4, 2:5, 3:6] = True
    return np.roll(ref, 1, axis=2), ref


@pytest.mark.parametrize(
    ("spacing", "shown"),
    [
        (None, "got None"),
        (1.0, "got 1.0"),
        ((1.0, 1.0), "got (1.0, 1.0)"),
        ((1.0, 0.0, 1.0), "got (1.0, 0.0, 1.0)"),
        ((1.0, -2.0, 1.0), "got (1.0, -2.0, 1.0)"),
        ((1.0, float("nan"), 1.0), "nan"),
        ("abc", "got 'abc'"),
        (((1.0, 1.0, 1.0),), "got ((1.0, 1.0, 1.0),)"),
    ],
)
def test_bad_spacing_is_a_geometry_error(spacing, shown: str) -> None:
    pred, ref = _masks()
    with pytest.raises(GeometryError, match="spacing must be 3 positive mm values") as info:
        compute_surface_distances(pred, ref, spacing)
    assert shown in str(info.value)
    with pytest.raises(GeometryError, match="spacing must be 3"):
        evaluate_case(pred.astype(np.uint8), ref.astype(np.uint8), spacing, {"a": 1})


def test_good_spacing_is_returned_as_floats() -> None:
    assert check_spacing(np.array([2, 1, 0.5]), 3) == (2.0, 1.0, 0.5)
    assert check_spacing([1, 1], 2) == (1.0, 1.0)


@pytest.mark.parametrize("spacing", [None, 2.0, (1.0, 1.0, 1.0, 1.0), (1.0, 0.0, 1.0), "abc"])
def test_volume_metrics_refuse_bad_spacing(spacing) -> None:
    pred, ref = _masks()
    with pytest.raises(GeometryError, match="spacing must be 3 positive mm values"):
        volume_metrics(confusion(pred, ref), spacing)


def test_volume_metrics_take_a_2d_spacing() -> None:
    pred, ref = _masks()
    counts = confusion(pred[2], ref[2])
    assert volume_metrics(counts, (2.0, 0.5))["ref_volume_ml"] == pytest.approx(
        ref[2].sum() * 1.0 / 1000
    )
