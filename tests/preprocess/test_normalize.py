"""Normalisation numbers against direct NumPy formulas."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import ConfigError
from medseg.plan.plan import ChannelNormalization
from medseg.preprocess import normalize


@pytest.fixture
def hu():
    return np.random.default_rng(3).normal(40, 400, (1, 6, 7, 8)).astype(np.float32)


def test_ct_clips_then_zscores_with_dataset_statistics(hu):
    scheme = ChannelNormalization(
        scheme="ct", clip_low=-200.0, clip_high=300.0, mean=50.0, std=120.0
    )
    expected = (np.clip(hu.astype(np.float64), -200, 300) - 50) / 120
    out = normalize(hu, [scheme])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert out.max() == pytest.approx(250 / 120, rel=1e-6)


def test_zscore_per_image(hu):
    out = normalize(hu, [ChannelNormalization(scheme="zscore")])
    ref = (hu.astype(np.float64) - hu.mean(dtype=np.float64)) / hu.std(dtype=np.float64)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_zscore_inside_mask(hu):
    mask = np.zeros(hu.shape[1:], bool)
    mask[1:5, 2:6, 1:7] = True
    out = normalize(hu, [ChannelNormalization(scheme="zscore", use_mask=True)], mask)
    inside = hu[0][mask].astype(np.float64)
    np.testing.assert_allclose(out[0][mask], (inside - inside.mean()) / inside.std(), atol=1e-4)
    assert np.all(out[0][~mask] == 0)


def test_rescale_rgb_and_none(hu):
    schemes = [ChannelNormalization(scheme=s) for s in ("rescale_0_1", "rgb_0_1", "none")]
    stacked = np.concatenate([hu, np.full_like(hu, 255.0), hu])
    out = normalize(stacked, schemes)
    assert out[0].min() == 0
    assert out[0].max() == pytest.approx(1)
    np.testing.assert_allclose(out[1], 1.0)
    np.testing.assert_array_equal(out[2], hu[0])


def test_channel_count_mismatch_and_missing_ct_stats(hu):
    with pytest.raises(ConfigError, match="2 channels but the image has 1"):
        normalize(hu, [ChannelNormalization(scheme="zscore")] * 2)
    with pytest.raises(ConfigError, match="CT needs"):
        normalize(hu, [ChannelNormalization(scheme="ct")])
