"""Tiled prediction: blending, tissue-only and coarse-to-fine agree with a plain tile loop,
the output is a pyramidal TIFF with the slide's mpp, a killed run resumes, bad models fail."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from medseg.errors import ConfigError, GeometryError
from medseg.wsi import Slide, tissue_mask
from medseg.wsi.grid import TileGrid
from medseg.wsi.synthetic import TRUTH_LABELS
from medseg.wsi.tiled import TiledSettings, predict_slide

NAIVE = TiledSettings(tissue_only=False, coarse_downsample=None)


def dark_model(rgb: np.ndarray) -> np.ndarray:
    """Tumour = locally dark (dense nuclei): a smooth, scale-tolerant classical tile model."""
    darkness = 1.0 - rgb.astype(np.float32).mean(axis=0) / 255.0
    p = 1.0 / (1.0 + np.exp(-(ndimage.gaussian_filter(darkness, 6.0) - 0.34) * 25.0))
    return np.stack([1.0 - p, p])


def _level0(path) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        return tif.series[0].levels[0].asarray()


def test_grid_boxes_and_tiles_outside():
    grid = TileGrid(shape=(600, 500), tile=256, halo=32)
    assert (grid.rows, grid.cols, len(grid)) == (3, 2, 6)
    assert grid.tile_box(2, 1) == (512, 256, 88, 244)
    assert grid.window_box(0, 0) == (0, 0, 288, 288)
    assert grid.window_box(1, 1) == (224, 224, 320, 276)
    with pytest.raises(GeometryError, match="outside the slide"):
        grid.tile_box(3, 0)
    with pytest.raises(ConfigError, match="multiple of 16"):
        TileGrid(shape=(10, 10), tile=100)


def test_identity_model_blends_to_the_image_itself(tmp_path, synthetic_slide):
    """A model echoing its input: blending overlapping windows must reproduce the level."""

    def echo(rgb: np.ndarray) -> np.ndarray:
        red = rgb[0].astype(np.float32) / 255.0
        return np.stack([1.0 - red, red])

    settings = TiledSettings(level=2, tile=64, halo=16, tissue_only=False, coarse_downsample=None)
    with Slide(synthetic_slide[0]) as slide:
        predict_slide(slide, echo, tmp_path / "echo.tif", settings=settings)
        red = slide.read_level(2)[0]
    expected = (red >= 128).astype(np.uint8)  # argmax of (1 - r, r)
    got = _level0(tmp_path / "echo.tif")
    undecided = np.abs(red.astype(int) * 2 - 255) < 2
    np.testing.assert_array_equal(got[~undecided], expected[~undecided])


def test_fast_equals_naive_on_tissue_and_output_geometry(tmp_path, synthetic_slide):
    path, renderer = synthetic_slide
    with Slide(path) as slide:
        mask = tissue_mask(slide)
        fast = predict_slide(
            slide, dark_model, tmp_path / "fast.tif", tissue=mask,
            settings=TiledSettings(level=1, tile=128, halo=16, coarse_downsample=4.0),
        )  # fmt: skip
        naive = predict_slide(
            slide, dark_model, tmp_path / "naive.tif",
            settings=TiledSettings(level=1, tile=128, halo=16, tissue_only=False,
                                   coarse_downsample=None),
        )  # fmt: skip
    assert naive.tiles_refined == naive.tiles_total == 80
    assert fast.tiles_refined < fast.tiles_tissue < fast.tiles_total
    assert fast.coarse_tiles > 0
    a, b = _level0(tmp_path / "fast.tif"), _level0(tmp_path / "naive.tif")
    truth = renderer.truth(2.0, (0, 0), a.shape)
    tissue = np.isin(truth, [TRUTH_LABELS["tissue"], TRUTH_LABELS["tumour"]])
    assert np.mean(a[tissue] == b[tissue]) > 0.99
    tumour = truth == TRUTH_LABELS["tumour"]
    dice = 2 * np.sum((a == 1) & tumour) / (np.sum(a == 1) + np.sum(tumour))
    assert dice > 0.6  # a crude classical model; the pipeline is what is tested
    assert np.mean(a[truth == TRUTH_LABELS["background"]]) < 0.01  # glass stays background
    with Slide(tmp_path / "fast.tif") as out:
        assert out.shape == (1024, 1280)
        assert out.mpp == pytest.approx((1.0, 1.0))  # the slide's level-1 mpp
        assert len(out.levels) == 5  # halving down to one 128 px tile
        assert out.levels[1].mpp == pytest.approx((2.0, 2.0))
    assert not (tmp_path / "fast.tif.parts").exists()


def test_killed_run_resumes_from_its_manifest(tmp_path, synthetic_slide):
    calls = {"n": 0}

    def dying(rgb: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 45:  # in tile row 4 (10 tiles a row)
            raise KeyboardInterrupt
        return dark_model(rgb)

    out = tmp_path / "labels.tif"
    settings = TiledSettings(level=1, tile=128, halo=16, tissue_only=False, coarse_downsample=None)
    with Slide(synthetic_slide[0]) as slide:
        with pytest.raises(KeyboardInterrupt):
            predict_slide(slide, dying, out, settings=settings)
        assert not out.exists()  # nothing half-written
        assert (tmp_path / "labels.tif.parts" / "manifest.json").is_file()
        resumed = predict_slide(slide, dying, out, settings=settings)
        predict_slide(slide, dark_model, tmp_path / "reference.tif", settings=settings)
    assert resumed.rows_resumed == 3  # rows 0-2 were complete (row 3 waits for row 4's windows)
    assert calls["n"] == 45 + 60  # resumed at row 3, re-predicting row 2 only for blending
    np.testing.assert_array_equal(_level0(out), _level0(tmp_path / "reference.tif"))


def test_other_settings_start_over(tmp_path, synthetic_slide):
    out = tmp_path / "labels.tif"
    parts = tmp_path / "labels.tif.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text('{"key": {"version": 0}, "rows_done": [0, 1, 2]}')
    settings = TiledSettings(level=3, tissue_only=False, coarse_downsample=None)
    with Slide(synthetic_slide[0]) as slide:
        report = predict_slide(slide, dark_model, out, settings=settings)
    assert report.rows_resumed == 0


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (lambda rgb: rgb[0], "shape"),
        (lambda rgb: np.full((2, *rgb.shape[1:]), np.nan), "NaN"),
        (lambda rgb: np.ones((1, *rgb.shape[1:])), "C >= 2"),
    ],
)
def test_bad_models_fail_clearly_and_write_nothing(tmp_path, synthetic_slide, model, match):
    settings = TiledSettings(level=3, tissue_only=False, coarse_downsample=None)
    with Slide(synthetic_slide[0]) as slide, pytest.raises(ConfigError, match=match):
        predict_slide(slide, model, tmp_path / "out.tif", settings=settings)
    assert not (tmp_path / "out.tif").exists()


def test_bad_settings(tmp_path, synthetic_slide):
    with Slide(synthetic_slide[0]) as slide:
        with pytest.raises(ConfigError, match="tissue mask"):
            predict_slide(slide, dark_model, tmp_path / "o.tif")
        with pytest.raises(ConfigError, match="no level 9"):
            predict_slide(
                slide,
                dark_model,
                tmp_path / "o.tif",
                settings=TiledSettings(level=9, tissue_only=False),
            )
    with pytest.raises(ConfigError, match="coarse_downsample"):
        TiledSettings(coarse_downsample=0.5)
