"""Corruptions for the robustness benchmark: analytic checks of each kind, and the report."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2hed

from medseg.errors import ConfigError
from medseg.wsi.nuclei import NucleiSpec, synthetic_nuclei, watershed_nuclei
from medseg.wsi.robustness import (
    Corruption,
    brightfield_from_fluorescence,
    corrupt,
    default_corruptions,
    robustness_report,
)


def _grey(value: int, shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    return np.full((3, *shape), value, dtype=np.uint8)


@pytest.mark.parametrize(
    ("kind", "strength"), [("noise", 0.0), ("blur", 0.0), ("contrast", 1.0), ("stain", 0.0)]
)
def test_zero_strength_gives_the_image_back(kind, strength):
    rgb = np.random.default_rng(0).integers(1, 255, (3, 40, 50), dtype=np.uint8)
    out = corrupt(rgb, Corruption(kind=kind, strength=strength), np.random.default_rng(1))
    assert out.dtype == np.uint8
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb).max() <= 1  # stain: Beer-Lambert round trip, rounding


def test_noise_has_the_requested_standard_deviation():
    out = corrupt(_grey(128, (200, 200)), Corruption(kind="noise", strength=0.1),
                  np.random.default_rng(0))  # fmt: skip
    assert np.std(out.astype(float)) == pytest.approx(25.5, rel=0.03)
    assert np.mean(out.astype(float)) == pytest.approx(128, abs=0.5)


def test_blur_of_a_line_has_the_requested_sigma():
    rgb = _grey(0, (61, 61))
    rgb[:, :, 30] = 255
    out = corrupt(rgb, Corruption(kind="blur", strength=2.0), np.random.default_rng(0))
    # the profile across the line is a Gaussian of sigma 2 (peak 51): its variance is 4
    profile = out[0, 30].astype(float)
    x = np.arange(61) - 30
    assert (profile * x**2).sum() / profile.sum() == pytest.approx(4.0, rel=0.05)
    assert profile.sum() == pytest.approx(255, rel=0.02)  # nothing lost
    assert out[1:].tolist() == [out[0].tolist()] * 2  # channels blurred alike, not across


def test_contrast_scales_the_spread_and_keeps_the_mean():
    rng = np.random.default_rng(0)
    rgb = rng.integers(60, 200, (3, 80, 80), dtype=np.uint8)
    out = corrupt(rgb, Corruption(kind="contrast", strength=0.4), rng).astype(float)
    for channel in range(3):
        assert out[channel].std() == pytest.approx(0.4 * rgb[channel].std(), rel=0.02)
        assert out[channel].mean() == pytest.approx(rgb[channel].mean(), abs=0.5)


def test_lower_jpeg_quality_loses_more():
    rgb = brightfield_from_fluorescence(
        synthetic_nuclei(NucleiSpec(), np.random.default_rng(0))[0], np.random.default_rng(0)
    )
    errors = [
        np.abs(corrupt(rgb, Corruption(kind="jpeg", strength=q), None).astype(int) - rgb).mean()
        for q in (90, 40, 5)
    ]
    assert 0 < errors[0] < errors[1] < errors[2]


def test_stain_shift_leaks_eosin_into_the_haematoxylin_channel():
    # pure eosin staining (scikit-image's reference vector): no haematoxylin before the shift
    image = np.zeros((1, 32, 32), np.float32)
    rgb = brightfield_from_fluorescence(image, np.random.default_rng(0))
    haematoxylin = [
        rgb2hed(np.moveaxis(corrupt(rgb, Corruption(kind="stain", strength=s), None), 0, -1))[
            ..., 0
        ].mean()
        for s in (0.0, 0.25, 0.5)
    ]
    assert abs(haematoxylin[0]) < 0.01
    assert haematoxylin[0] < haematoxylin[1] < haematoxylin[2]


def test_brightfield_nuclei_are_haematoxylin():
    image, truth = synthetic_nuclei(NucleiSpec(), np.random.default_rng(3))
    rgb = brightfield_from_fluorescence(image, np.random.default_rng(3))
    stains = rgb2hed(np.moveaxis(rgb, 0, -1))
    assert stains[..., 0][truth > 0].mean() > 3 * stains[..., 0][truth == 0].mean()


@pytest.mark.parametrize(
    ("kind", "strength", "match"),
    [
        ("fog", 1.0, "use one of"),
        ("jpeg", 0.0, "1 to 95"),
        ("contrast", 2.0, "0 \\(flat\\)"),
        ("noise", -1.0, ">= 0"),
    ],
)
def test_bad_corruptions(kind, strength, match):
    with pytest.raises(ConfigError, match=match):
        Corruption(kind=kind, strength=strength)


def test_grey_input_is_refused():
    with pytest.raises(ConfigError, match="RGB"):
        corrupt(np.zeros((1, 8, 8), np.uint8), Corruption(kind="noise", strength=0.1), None)


def test_report_drops_are_clean_minus_corrupted():
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(2):
        image, truth = synthetic_nuclei(NucleiSpec(count=25), rng)
        cases.append((brightfield_from_fluorescence(image, rng), truth))
    truth_by_image = {case[0].tobytes(): case[1] for case in cases}

    def oracle(rgb):  # perfect on the clean images, nothing on corrupted ones
        return truth_by_image.get(rgb.tobytes(), np.zeros(rgb.shape[1:], np.int32))

    corruptions = [Corruption(kind="noise", strength=0.3)]
    progress = []
    rows = robustness_report(
        {"oracle": oracle, "watershed": watershed_nuclei},
        cases,
        corruptions,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert progress == [(1, 2), (2, 2)]
    table = {(r.method, r.kind): r for r in rows}
    assert table["oracle", "clean"].f1 == table["oracle", "clean"].aji == 1.0
    assert table["oracle", "noise"].f1 == 0.0
    assert table["oracle", "noise"].drop_f1 == 1.0
    assert table["oracle", "noise"].drop_aji == 1.0
    clean, noisy = table["watershed", "clean"], table["watershed", "noise"]
    assert clean.drop_pq == 0.0
    assert noisy.drop_pq == pytest.approx(clean.pq - noisy.pq)
    assert clean.f1 > 0.5
    assert noisy.drop_f1 > 0.2  # heavy noise hurts the baseline


def test_defaults_cover_every_kind_at_three_strengths():
    kinds = [c.kind for c in default_corruptions()]
    assert sorted(set(kinds)) == ["blur", "contrast", "jpeg", "noise", "stain"]
    assert all(kinds.count(k) == 3 for k in set(kinds))
    with pytest.raises(ConfigError, match="at least one case"):
        robustness_report({"w": watershed_nuclei}, [])
