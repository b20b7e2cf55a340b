"""Nuclei baseline on synthetic microscopy; GeoJSON out and in, with invalid polygons refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.errors import DatasetError
from medseg.evaluate.instances import instance_metrics
from medseg.wsi.geojson import instances_to_geojson, rasterize, read_annotations, write_geojson
from medseg.wsi.nuclei import (
    NucleiSpec,
    instances_from_maps,
    nuclear_channel,
    synthetic_nuclei,
    watershed_nuclei,
)


def test_synthetic_nuclei_are_consecutive_single_pieces():
    from scipy import ndimage

    image, labels = synthetic_nuclei(NucleiSpec(count=30), np.random.default_rng(0))
    assert image.shape == (1, 128, 128)
    assert labels.max() == len(np.unique(labels)) - 1 > 15
    for obj in range(1, labels.max() + 1):
        assert ndimage.label(labels == obj)[1] == 1
    assert image[0][labels > 0].mean() > image[0][labels == 0].mean() + 0.3


def test_watershed_separates_two_touching_discs():
    yy, xx = np.mgrid[:40, :60]
    truth = np.zeros((40, 60), np.int32)
    truth[(yy - 20) ** 2 + (xx - 20) ** 2 <= 100] = 1
    truth[(yy - 20) ** 2 + (xx - 37) ** 2 <= 100] = 2
    image = (truth > 0).astype(np.float32)[None]
    pred = watershed_nuclei(image, min_distance_px=5)
    scores = instance_metrics(pred, truth)
    assert pred.max() == 2
    assert scores.f1 == 1.0
    assert scores.sq > 0.85


def test_baseline_finds_most_synthetic_nuclei():
    rng = np.random.default_rng(1)
    f1 = []
    for _ in range(3):
        image, labels = synthetic_nuclei(NucleiSpec(), rng)
        f1.append(instance_metrics(watershed_nuclei(image), labels).f1)
    assert np.mean(f1) > 0.6


def test_maps_to_instances_use_the_centre_peaks():
    yy, xx = np.mgrid[:30, :50]
    d1 = 1 - np.hypot(yy - 15, xx - 15) / 9
    d2 = 1 - np.hypot(yy - 15, xx - 32) / 9
    centre = np.clip(np.maximum(d1, d2), 0, 1)
    pred = instances_from_maps((centre > 0).astype(float), centre)
    assert pred.max() == 2


def test_hematoxylin_channel_is_bright_on_purple():
    rgb = np.full((3, 10, 10), 240, np.uint8)
    rgb[:, :, :5] = np.array([80, 40, 130], np.uint8)[:, None, None]
    channel = nuclear_channel(rgb)
    assert channel[:, :5].mean() > channel[:, 5:].mean() + 0.5


def test_geojson_round_trip_matches_the_instances(tmp_path):
    labels = np.zeros((40, 40), np.int32)
    labels[5:15, 5:20] = 1
    labels[25:35, 10:30] = 2
    collection = instances_to_geojson(labels, offset=(100.0, 200.0), downsample=2.0,
                                      classification="Nucleus")  # fmt: skip
    path = write_geojson(collection, tmp_path / "nuclei.geojson")
    assert json.loads(path.read_text())["features"][0]["properties"]["objectType"] == "detection"
    annotations = read_annotations(path)
    assert [a.name for a in annotations] == ["Nucleus", "Nucleus"]
    # rectangle 1 spans x 5..19 -> level-0 200 + 2 * [5, 20) = [210, 240); contour through
    # pixel-edge midpoints lies within one map pixel of it
    assert annotations[0].exterior[:, 0].min() == pytest.approx(211.0, abs=1.01)
    back = rasterize(annotations, (40, 40), classes={"Nucleus": 1}, offset=(100, 200),
                     downsample=2.0)  # fmt: skip
    overlap = np.sum((back > 0) & (labels > 0)) / np.sum((back > 0) | (labels > 0))
    assert overlap > 0.85


@pytest.mark.parametrize(
    ("geometry", "match"),
    [
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "at least 4"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4]]]}, "not closed"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [4, 4], [4, 0], [0, 6], [0, 0]]]},
         "intersects itself"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}, "zero area"),
        ({"type": "Point", "coordinates": [1, 2]}, "not a Polygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], ["a", 0], [4, 4], [0, 0]]]}, "not numbers"),
    ],
)  # fmt: skip
def test_invalid_polygons_are_clear_errors(tmp_path, geometry, match):
    path = tmp_path / "bad.geojson"
    feature = {"type": "Feature", "geometry": geometry, "properties": {}}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    with pytest.raises(DatasetError, match=match):
        read_annotations(path)


def test_unreadable_geojson(tmp_path):
    path = tmp_path / "bad.geojson"
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="not readable GeoJSON"):
        read_annotations(path)
