"""Slide reading: levels, mpp, lazy regions, and the bad-input errors."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import tifffile

from medseg.errors import ConfigError, GeometryError, ImageReadError
from medseg.wsi import Slide
from medseg.wsi.synthetic import write_synthetic_slide


def test_levels_mpp_and_regions_match_the_writer(synthetic_slide):
    path, renderer = synthetic_slide
    with Slide(path) as slide:
        assert slide.shape == (2048, 2560)
        assert [level.shape for level in slide.levels] == [
            (2048, 2560),
            (1024, 1280),
            (512, 640),
            (256, 320),
            (128, 160),
        ]
        assert slide.mpp == pytest.approx((0.5, 0.5))
        assert slide.levels[2].mpp == pytest.approx((2.0, 2.0))
        assert slide.levels[3].downsample == pytest.approx(8.0)
        assert not slide.mpp_assumed
        region = slide.read_region(1, (300, 410), (70, 90))
    assert region.shape == (3, 70, 90)
    assert region.dtype == np.uint8
    # lossless zlib: the region is exactly what the renderer drew at downsample 2
    expected = renderer.render(2.0, (300, 410), (70, 90)).transpose(2, 0, 1)
    np.testing.assert_array_equal(region, expected)


def test_region_matches_tifffile_reading_the_same_level(synthetic_slide):
    path, _ = synthetic_slide
    with Slide(path) as slide:
        region = slide.read_region(0, (1000, 1200), (300, 256))
    with tifffile.TiffFile(path) as tif:
        full = tif.series[0].levels[0].asarray()
    np.testing.assert_array_equal(region, full[1000:1300, 1200:1456].transpose(2, 0, 1))


def test_level_for_downsample_picks_the_most_reduced_finer_level(synthetic_slide):
    with Slide(synthetic_slide[0]) as slide:
        assert slide.level_for_downsample(1.0) == 0
        assert slide.level_for_downsample(5.0) == 2
        assert slide.level_for_downsample(100.0) == 4


@pytest.mark.parametrize(
    ("level", "start", "size"),
    [
        (0, (2000, 0), (100, 10)),
        (0, (-1, 0), (10, 10)),
        (3, (0, 300), (10, 30)),
        (5, (0, 0), (1, 1)),
    ],
)
def test_regions_outside_the_slide_are_refused(synthetic_slide, level, start, size):
    with Slide(synthetic_slide[0]) as slide, pytest.raises(GeometryError, match=r"outside|level"):
        slide.read_region(level, start, size)


def test_slide_without_mpp_warns_with_the_assumed_value(tmp_path, slide_spec):
    path = tmp_path / "nompp.tif"
    write_synthetic_slide(path, dataclasses.replace(slide_spec, shape=(512, 512), mpp=None))
    with pytest.warns(UserWarning, match=r"assuming 0\.5 µm/px"):
        slide = Slide(path)
    assert slide.mpp_assumed
    assert slide.mpp == (0.5, 0.5)
    slide.close()
    with Slide(path, mpp=0.25) as slide:
        assert slide.mpp == (0.25, 0.25)
        assert slide.levels[1].mpp == (0.5, 0.5)


def test_truncated_tiff_is_a_clear_error(tmp_path, synthetic_slide):
    data = synthetic_slide[0].read_bytes()
    path = tmp_path / "truncated.tif"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"truncated|not a readable slide"):
        Slide(path)


def test_missing_non_tiff_and_bad_mpp(tmp_path, synthetic_slide):
    with pytest.raises(ImageReadError, match="no such slide"):
        Slide(tmp_path / "absent.svs")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all" * 10)
    with pytest.raises(ImageReadError, match="not a readable slide"):
        Slide(junk)
    with pytest.raises(ConfigError, match="mpp"):
        Slide(synthetic_slide[0], mpp=-1.0)


def test_read_level_refuses_levels_too_big_for_memory(synthetic_slide):
    with Slide(synthetic_slide[0]) as slide, pytest.raises(GeometryError, match="in memory"):
        slide.read_level(0, max_pixels=1000)


def test_jpeg_slide_without_imagecodecs_names_the_extra(tmp_path, monkeypatch, slide_spec):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # import imagecodecs fails
    spec = dataclasses.replace(slide_spec, compression="jpeg")
    with pytest.raises(ConfigError, match=r"imagecodecs.*medseg\[wsi\]"):
        write_synthetic_slide(tmp_path / "slide.tif", spec)
    assert not (tmp_path / "slide.tif").exists()
