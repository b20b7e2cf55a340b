"""Tissue and pen masks against the synthetic slide's ground truth; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.errors import ConfigError, ImageWriteError
from medseg.wsi import MASK_LABELS, Slide, TissueSettings, classify_rgb, tissue_mask, write_mask
from medseg.wsi.synthetic import TRUTH_LABELS


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def test_mask_matches_ground_truth_tissue_and_pen(synthetic_slide):
    path, renderer = synthetic_slide
    with Slide(path) as slide:
        mask = tissue_mask(slide, TissueSettings(mask_mpp=4.0))
    assert mask.downsample == (8.0, 8.0)
    assert mask.mpp == (4.0, 4.0)
    truth = renderer.truth(8.0, (0, 0), mask.labels.shape)
    tissue_truth = np.isin(truth, [TRUTH_LABELS["tissue"], TRUTH_LABELS["tumour"]])
    assert _dice(mask.labels == MASK_LABELS["tissue"], tissue_truth) > 0.9
    pen_truth = truth == TRUTH_LABELS["pen"]
    pen = mask.labels == MASK_LABELS["pen"]
    assert pen_truth.any()
    assert np.mean(pen[pen_truth]) > 0.95  # every stroke found
    assert not np.any(pen & ~_grow(pen_truth, 8))  # within the 24 µm dilation (6 px)
    assert 0.0 < mask.tissue_fraction < 0.8


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=pixels)


def test_classify_uniform_glass_is_all_background():
    glass = np.full((3, 64, 64), 240, dtype=np.uint8)
    labels, _ = classify_rgb(glass, mpp=8.0)
    assert not labels.any()


def test_explicit_threshold_and_pens_off(synthetic_slide):
    with Slide(synthetic_slide[0]) as slide:
        mask = tissue_mask(slide, TissueSettings(saturation_threshold=0.99, pens=False))
    assert mask.saturation_threshold == 0.99
    assert not np.any(mask.labels == MASK_LABELS["pen"])
    assert mask.tissue_fraction < 0.01


def test_tissue_in_a_rectangle(synthetic_slide):
    with Slide(synthetic_slide[0]) as slide:
        mask = tissue_mask(slide)
    whole = mask.tissue_in((0, 0), (2048, 2560))
    assert whole == pytest.approx(mask.tissue_fraction, abs=1e-6)
    assert mask.tissue_in((0, 0), (1024, 1280), downsample=2.0) == pytest.approx(whole, abs=1e-6)


def test_bad_settings_and_suffix(tmp_path, synthetic_slide):
    with pytest.raises(ConfigError, match="mask_mpp"):
        TissueSettings(mask_mpp=0)
    with pytest.raises(ConfigError, match="saturation_threshold"):
        TissueSettings(saturation_threshold=2.0)
    with Slide(synthetic_slide[0]) as slide:
        mask = tissue_mask(slide)
    with pytest.raises(ImageWriteError, match=r"\.png or \.tif"):
        write_mask(mask, tmp_path / "mask.jpg")
    assert not list(tmp_path.iterdir())


def test_cli_writes_png_with_resolution_and_json(tmp_path, synthetic_slide):
    out = tmp_path / "mask.png"
    result = CliRunner().invoke(
        app_typer, ["wsi", "tissue", str(synthetic_slide[0]), "-o", str(out), "--mask-mpp", "16"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["mask_mpp"] == [16.0, 16.0]
    with PILImage.open(out) as png:
        assert png.size == (80, 64)  # 2560 x 2048 px / 32
        assert png.info["dpi"] == pytest.approx((25400 / 16, 25400 / 16), rel=1e-3)
        labels = np.asarray(png)
    assert set(np.unique(labels)) <= {0, 1, 2}
    sidecar = json.loads((tmp_path / "mask.png.json").read_text())
    assert sidecar["labels"] == MASK_LABELS


def test_cli_tiff_keeps_mpp(tmp_path, synthetic_slide):
    import tifffile

    out = tmp_path / "mask.tif"
    result = CliRunner().invoke(
        app_typer, ["wsi", "tissue", str(synthetic_slide[0]), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(out) as tif:
        x_res = tif.pages[0].tags["XResolution"].value
        assert tif.pages[0].tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
    assert 1e4 * x_res[1] / x_res[0] == pytest.approx(8.0)


def test_tissue_cut_by_the_slide_edge_is_kept():
    rgb = np.full((3, 80, 80), 240, dtype=np.uint8)
    rgb[:, 20:60, :12] = np.array([220, 150, 190], dtype=np.uint8)[:, None, None]  # at x = 0
    labels, _ = classify_rgb(rgb, mpp=8.0)
    assert np.all(labels[22:58, :10] == MASK_LABELS["tissue"])
    assert not labels[:, 20:].any()
