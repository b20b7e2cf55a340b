"""Expected calibration error on hand-computable probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.errors import GeometryError
from medseg.evaluate import expected_calibration_error


def test_perfectly_confident_and_right_is_zero():
    ref = np.array([[0, 1], [1, 2]])
    probs = np.eye(3)[ref].transpose(2, 0, 1)
    cal = expected_calibration_error(probs, ref)
    assert cal.ece == pytest.approx(0.0)
    assert cal.bin_counts.sum() == 3  # foreground voxels only


def test_known_value_and_reliability_bins():
    ref = np.ones((10,), int)
    probs = np.zeros((2, 10))
    probs[1] = 0.8  # confidence 0.8 for class 1 everywhere
    probs[0] = 0.2
    probs[:, :3] = probs[::-1, :3]  # 3 voxels predict class 0 with confidence 0.8: wrong
    cal = expected_calibration_error(probs, ref, n_bins=10)
    assert cal.ece == pytest.approx(abs(0.7 - 0.8))
    b = int(np.flatnonzero(cal.bin_counts)[0])
    assert (cal.bin_edges[b], cal.bin_edges[b + 1]) == pytest.approx((0.7, 0.8))
    assert cal.bin_accuracy[b] == pytest.approx(0.7)
    assert math.isnan(cal.bin_confidence[0])


def test_shape_mismatch_raises():
    with pytest.raises(GeometryError, match="probabilities"):
        expected_calibration_error(np.zeros((2, 3, 3)), np.zeros((3, 4), int))
