"""Synthesis functions: lesion placement, deformation, bias field, contrast and noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.data import synth

SPACING = (3.0, 0.8, 0.8)


@pytest.fixture
def ball() -> np.ndarray:
    """Allowed mask: a ball of radius 10 voxels in a 24 x 30 x 30 grid."""
    grid = np.indices((24, 30, 30)) - np.array([11.5, 14.5, 14.5]).reshape(3, 1, 1, 1)
    return (grid**2).sum(axis=0) < 10**2


@pytest.mark.parametrize("seed", range(5))
def test_lesions_inside_mask_and_count_in_range(ball: np.ndarray, seed: int) -> None:
    lesions = synth.synthesize_lesions(
        ball,
        np.random.default_rng(seed),
        count_range=(2, 4),
        radius_range_mm=(1.5, 3.0),
        spacing=SPACING,
    )
    assert lesions.dtype == np.int32
    assert lesions.shape == ball.shape
    assert not (lesions > 0)[~ball].any()
    ids = set(np.unique(lesions)) - {0}
    assert 2 <= len(ids) <= 4
    assert ids == set(range(1, len(ids) + 1))


def test_lesion_size_is_bounded_by_the_radius(ball: np.ndarray) -> None:
    r_max, irregularity = 2.0, 0.4
    lesions = synth.synthesize_lesions(
        ball,
        np.random.default_rng(1),
        count_range=(6, 6),
        radius_range_mm=(1.0, r_max),
        spacing=(1.0, 1.0, 1.0),
        irregularity=irregularity,
    )
    bound = 4 / 3 * np.pi * (r_max * (1 + irregularity) + np.sqrt(3) / 2) ** 3
    sizes = np.bincount(lesions.ravel())[1:]
    assert len(sizes) == 6
    assert sizes.min() >= 1
    assert sizes.max() <= bound


def test_lesions_are_deterministic_and_seed_dependent(ball: np.ndarray) -> None:
    def draw(seed: int) -> np.ndarray:
        return synth.synthesize_lesions(
            ball,
            np.random.default_rng(seed),
            count_range=(3, 3),
            radius_range_mm=(1.5, 3.0),
            spacing=SPACING,
        )

    np.testing.assert_array_equal(draw(7), draw(7))
    assert not np.array_equal(draw(7), draw(8))


def test_lesion_edge_cases(ball: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    kwargs = {"radius_range_mm": (1.0, 2.0), "spacing": SPACING}
    assert not synth.synthesize_lesions(ball, rng, count_range=(0, 0), **kwargs).any()
    empty = np.zeros_like(ball)
    assert not synth.synthesize_lesions(empty, rng, count_range=(3, 5), **kwargs).any()
    with pytest.raises(ValueError, match="irregularity"):
        synth.synthesize_lesions(ball, rng, count_range=(1, 1), irregularity=1.0, **kwargs)
    with pytest.raises(ValueError, match="count_range"):
        synth.synthesize_lesions(ball, rng, count_range=(3, 1), **kwargs)


def test_lesions_in_2d() -> None:
    allowed = np.zeros((40, 40), bool)
    allowed[10:30, 5:35] = True
    lesions = synth.synthesize_lesions(
        allowed,
        np.random.default_rng(3),
        count_range=(1, 3),
        radius_range_mm=(1.0, 3.0),
        spacing=(1.0, 1.0),
    )
    assert 1 <= lesions.max() <= 3
    assert not (lesions > 0)[~allowed].any()


def test_deformation_is_smooth_with_the_requested_magnitude() -> None:
    shape = (20, 40, 40)
    field = synth.random_smooth_deformation(
        shape, np.random.default_rng(0), magnitude_mm=3.0, spacing=(2.0, 2.0, 2.0)
    )
    assert field.shape == (3, *shape)
    assert field.dtype == np.float32
    assert 1.0 < field.std() < 6.0
    step = np.abs(np.diff(field, axis=3)).max()
    assert step < 0.5 * field.std()


def test_zero_and_shift_deformations_match_scipy() -> None:
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((12, 16, 16)), 1.5).astype(np.float32)
    spacing = (3.0, 0.8, 0.8)
    zero = np.zeros((3, *image.shape), np.float32)
    np.testing.assert_allclose(synth.apply_deformation(image, zero, spacing), image, atol=1e-6)
    shift = zero.copy()
    shift[0] = 3.0  # one voxel along z, in mm
    expected = ndimage.shift(image, (-1, 0, 0), order=1, mode="constant")
    np.testing.assert_allclose(synth.apply_deformation(image, shift, spacing), expected, atol=1e-5)
    labels = (image > image.mean()).astype(np.uint8)
    warped = synth.apply_deformation(labels, shift, spacing, order=0)
    assert warped.dtype == np.uint8
    assert set(np.unique(warped)) <= {0, 1}


def test_bias_field_is_positive_and_smooth() -> None:
    field = synth.bias_field((16, 32, 32), np.random.default_rng(0), strength=0.3)
    assert field.shape == (16, 32, 32)
    assert field.min() > 0
    log_field = np.log(field)
    assert 0.05 < log_field.std() < 0.6
    assert np.abs(np.diff(log_field, axis=2)).mean() < 0.2 * log_field.std()


def test_smooth_random_field_shapes() -> None:
    for shape in [(5, 7, 3), (95, 117, 99), (30, 2)]:
        field = synth.smooth_random_field(shape, np.random.default_rng(0), grid=(3,) * len(shape))
        assert field.shape == shape
        assert np.isfinite(field).all()


def test_lesion_intensity_scales_inside_only() -> None:
    image = np.full((20, 20, 20), 100.0, np.float32)
    lesions = np.zeros(image.shape, np.int32)
    lesions[4:8, 4:8, 4:8] = 1
    lesions[12:16, 12:16, 12:16] = 2
    out = synth.apply_lesion_intensity(
        image, lesions, np.random.default_rng(0), contrast_range=(0.5, 0.7), edge_sigma_voxels=0
    )
    assert np.all(out[lesions == 0] == 100.0)
    for lesion in (1, 2):
        values = np.unique(out[lesions == lesion])
        assert len(values) == 1
        assert 50.0 <= values[0] <= 70.0
    assert np.all(image == 100.0)


def test_gamma_keeps_range_and_order() -> None:
    image = np.linspace(10.0, 200.0, 1000, dtype=np.float32).reshape(10, 10, 10)
    out = synth.random_gamma(image, np.random.default_rng(0), gamma_range=(0.5, 0.6))
    assert out.min() == pytest.approx(10.0)
    assert out.max() == pytest.approx(200.0)
    assert np.all(np.diff(out.ravel()) > 0)
    assert out[5, 5, 5] > image[5, 5, 5]  # gamma < 1 brightens mid-tones


def test_noise_statistics() -> None:
    rng = np.random.default_rng(0)
    flat = np.full((40, 40, 40), 100.0, np.float32)
    gaussian = synth.add_noise(flat, rng, sigma=5.0, rician=False)
    assert gaussian.std() == pytest.approx(5.0, rel=0.05)
    rician = synth.add_noise(np.zeros_like(flat), rng, sigma=5.0)
    assert rician.min() >= 0
    assert rician.mean() == pytest.approx(5.0 * np.sqrt(np.pi / 2), rel=0.05)  # Rayleigh mean
