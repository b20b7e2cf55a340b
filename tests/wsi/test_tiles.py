"""Training tiles from slides (GeoJSON polygons or a label image) and HED stain jitter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage
from scipy import ndimage

from medseg.errors import DatasetError
from medseg.wsi import Slide
from medseg.wsi.geojson import Annotation, instances_to_geojson, read_annotations, write_geojson
from medseg.wsi.synthetic import TRUTH_LABELS
from medseg.wsi.tiles import extract_tiles, hed_jitter


def _tumour_truth(renderer, downsample: float, shape):
    return (renderer.truth(downsample, (0, 0), shape) == TRUTH_LABELS["tumour"]).astype(np.uint8)


def test_label_image_tiles_match_the_truth(tmp_path, synthetic_slide):
    path, renderer = synthetic_slide
    truth = _tumour_truth(renderer, 8.0, (256, 320))
    with Slide(path) as slide:
        report = extract_tiles(slide, tmp_path / "ds", classes={"tumour": 1}, label_image=truth,
                               label_downsample=8.0, level=3, tile=128)  # fmt: skip
    assert report.tiles == 2 * 3
    assert report.labelled_pixels == int(truth.sum())
    case = "slide_L3_y128_x128"
    label = np.asarray(PILImage.open(tmp_path / "ds" / "labelsTr" / f"{case}.png"))
    np.testing.assert_array_equal(label, truth[128:256, 128:256])
    image = np.asarray(PILImage.open(tmp_path / "ds" / "imagesTr" / f"{case}_0000.png"))
    assert image.shape == (128, 128, 3)
    dataset = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    assert dataset["labels"] == {"background": 0, "tumour": 1}
    assert dataset["source_slide"]["mpp"] == [4.0, 4.0]


def test_geojson_tiles_agree_with_the_label_image(tmp_path, synthetic_slide):
    path, renderer = synthetic_slide
    truth = _tumour_truth(renderer, 8.0, (256, 320))
    regions, _ = ndimage.label(truth)
    collection = instances_to_geojson(regions, downsample=8.0, object_type="annotation",
                                      classification="Tumor")  # fmt: skip
    annotations = read_annotations(write_geojson(collection, tmp_path / "tumour.geojson"))
    with Slide(path) as slide:
        report = extract_tiles(slide, tmp_path / "ds", classes={"Tumor": 1},
                               annotations=annotations, level=3, tile=128,
                               min_labelled=0.01)  # fmt: skip
    assert 0 < report.tiles <= 6
    labels = [np.asarray(PILImage.open(p)) for p in (tmp_path / "ds" / "labelsTr").iterdir()]
    drawn = sum(int(lab.sum()) for lab in labels)
    assert abs(drawn - int(truth.sum())) < 0.1 * truth.sum()  # contours within a pixel


def test_medseg_check_accepts_the_dataset(tmp_path, synthetic_slide):
    from typer.testing import CliRunner

    from medseg.cli.main import app_typer

    path, renderer = synthetic_slide
    truth = _tumour_truth(renderer, 8.0, (256, 320))
    with Slide(path) as slide:
        extract_tiles(slide, tmp_path / "ds", classes={"tumour": 1}, label_image=truth,
                      label_downsample=8.0, level=3, tile=128)  # fmt: skip
    result = CliRunner().invoke(app_typer, ["check", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    plan_path = tmp_path / "plan.json"
    args = ["plan", str(tmp_path / "ds"), "-o", str(plan_path), "--device", "cpu"]
    args.append("--accept-warnings")  # a tile of glass has an empty label
    result = CliRunner().invoke(app_typer, args)
    assert result.exit_code == 0, result.output
    plan = json.loads(plan_path.read_text())
    assert plan["default_configuration"] == "2d"  # RGB tiles: the planner chooses 2D
    assert list(plan["channel_names"].values()) == ["R", "G", "B"]


def test_bad_label_sources(tmp_path, synthetic_slide):
    outside = Annotation(name="Tumor", exterior=np.array([[0, 0], [9000, 0], [9000, 10], [0, 0]],
                                                         dtype=float))  # fmt: skip
    with Slide(synthetic_slide[0]) as slide:
        with pytest.raises(DatasetError, match="exactly one label source"):
            extract_tiles(slide, tmp_path / "a", classes={"Tumor": 1})
        with pytest.raises(DatasetError, match="outside the 2560 x 2048 px slide"):
            extract_tiles(slide, tmp_path / "b", classes={"Tumor": 1}, annotations=[outside])
        with pytest.raises(DatasetError, match="does not cover the slide"):
            extract_tiles(slide, tmp_path / "c", classes={"Tumor": 1},
                          label_image=np.zeros((10, 10), np.uint8),
                          label_downsample=8.0)  # fmt: skip
    assert not (tmp_path / "b").exists()


def test_hed_jitter_identity_and_change(synthetic_slide):
    with Slide(synthetic_slide[0]) as slide:
        rgb = slide.read_region(2, (200, 250), (32, 32))  # H&E-like colours
    same = hed_jitter(rgb, np.random.default_rng(1), sigma=0.0, bias=0.0)
    assert np.abs(same.astype(int) - rgb).max() <= 1  # rounding only
    changed = hed_jitter(rgb, np.random.default_rng(1), sigma=0.2, bias=0.1)
    assert changed.shape == rgb.shape
    assert changed.dtype == np.uint8
    assert np.abs(changed.astype(int) - rgb).mean() > 3
