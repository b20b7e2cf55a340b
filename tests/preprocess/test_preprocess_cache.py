"""The preprocessed cache: layout, memory maps, foreground locations, skip and rebuild."""

from __future__ import annotations

import os

import numpy as np
import pytest

from medseg.errors import DatasetError
from medseg.io import read_image
from medseg.plan import apply_overrides
from medseg.preprocess import CaseCache, preprocess_dataset
from medseg.preprocess.cache import foreground_locations


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("c*")}


def test_cache_layout_and_contents(make_dataset, plan, tmp_path):
    dataset = make_dataset(n=2)
    cache = preprocess_dataset(dataset, plan, "3d", tmp_path / "cache", workers=1)
    folder = tmp_path / "cache" / "3d"
    assert cache.directory == folder
    assert cache.case_ids == ("c0", "c1")
    for name in ("c0_image.npy", "c0_label.npy", "c0.json", "manifest.json"):
        assert (folder / name).exists()
    image, label, props = cache.load("c0")
    assert isinstance(image, np.memmap)
    assert not image.flags.writeable
    assert image.dtype == np.float32
    assert image.ndim == 4
    assert label.dtype == np.uint8
    assert label.shape == (1, *image.shape[1:])
    assert props.case_id == "c0"
    assert props.shape_after_resampling == image.shape[1:]
    locations = cache.foreground_locations("c0")
    assert set(locations) == {1, 2}
    for value, coords in locations.items():
        assert coords.shape[1] == 3
        assert np.all(label[0][tuple(coords.T)] == value)
        assert len(coords) == min(10_000, np.sum(label[0] == value))
    with pytest.raises(DatasetError, match="not in the cache"):
        cache.load("nope")


def test_2d_configuration_stores_3d_arrays(make_dataset, plan, tmp_path):
    dataset = make_dataset(n=1)
    cache = preprocess_dataset(dataset, plan, "2d", tmp_path / "cache", workers=1)
    image, label, props = cache.load("c0", mmap=False)
    raw = read_image(dataset.cases[0].image_paths[0])
    assert image.shape[1] == props.shape_after_crop[0]  # axis 0 is not resampled in 2d
    assert image.ndim == 4
    assert label.ndim == 4
    assert raw.spacing == props.spacing


def test_cache_skipped_when_current_and_rebuilt_when_needed(make_dataset, plan, tmp_path):
    dataset = make_dataset(n=2)
    root = tmp_path / "cache"
    calls = []
    preprocess_dataset(dataset, plan, "3d", root, workers=1)
    before = _mtimes(root / "3d")
    preprocess_dataset(
        dataset, plan, "3d", root, workers=1, on_progress=lambda d, t: calls.append((d, t))
    )
    assert calls == []
    assert _mtimes(root / "3d") == before

    # editing a training-only field keeps the cache
    preprocess_dataset(
        dataset,
        apply_overrides(plan, {"training.epochs": 3}),
        "3d",
        root,
        workers=1,
        on_progress=lambda d, t: calls.append((d, t)),
    )
    assert calls == []

    # a changed input file redoes only that case
    label = dataset.cases[1].label_path
    stat = label.stat()
    os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    preprocess_dataset(
        dataset, plan, "3d", root, workers=1, on_progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(1, 1)]

    # a changed target spacing redoes everything, with the new shape
    coarse = apply_overrides(plan, {"3d.spacing": [3.0, 2.0, 2.0]})
    calls.clear()
    cache = preprocess_dataset(
        dataset, coarse, "3d", root, workers=1, on_progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(1, 2), (2, 2)]
    assert cache.properties("c0").spacing_after_resampling == pytest.approx(
        (3.0, 2.0, 2.0), rel=0.1
    )


def test_removed_case_leaves_the_cache(make_dataset, plan, tmp_path):
    dataset = make_dataset(n=2)
    root = tmp_path / "cache"
    preprocess_dataset(dataset, plan, "3d", root, workers=1)
    from dataclasses import replace

    smaller = replace(dataset, cases=dataset.cases[:1])
    cache = preprocess_dataset(smaller, plan, "3d", root, workers=1)
    assert cache.case_ids == ("c0",)
    assert not (root / "3d" / "c1_image.npy").exists()


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"manifest\.json"):
        CaseCache(tmp_path)


def test_foreground_locations_sampling():
    label = np.zeros((30, 30, 30), np.uint8)
    label[:20] = 1
    label[25, 5, 5] = 2
    locations = foreground_locations(label, max_samples=100)
    assert len(locations["1"]) == 180  # at least 1% of 18000 voxels
    assert locations["2"] == [[25, 5, 5]]
    assert foreground_locations(label, max_samples=100) == locations  # seeded


@pytest.mark.slow
def test_process_pool_gives_the_same_cache(make_dataset, plan, tmp_path):
    dataset = make_dataset(n=2)
    serial = preprocess_dataset(dataset, plan, "3d", tmp_path / "a", workers=1)
    pooled = preprocess_dataset(dataset, plan, "3d", tmp_path / "b", workers=2)
    for case_id in serial.case_ids:
        a, b = serial.load(case_id), pooled.load(case_id)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_2d_images_go_through_plan_and_cache(tmp_path):
    from medseg.data.dataset import Case, Dataset, LabelSpec
    from medseg.io import Image, write_image
    from medseg.plan import PlanBudget, extract_fingerprint, make_plan

    cases = []
    yy, xx = np.mgrid[:60, :50]
    label = ((yy - 30) ** 2 + (xx - 25) ** 2 < 150).astype(np.uint8)
    for i in range(2):
        image = (label * 100 + 20 + np.random.default_rng(i).normal(0, 3, label.shape)).astype(
            np.float32
        )
        ipath, lpath = tmp_path / f"d{i}_0000.nii.gz", tmp_path / f"d{i}.nii.gz"
        write_image(Image.from_array(image[None], (0.5, 0.7)), ipath)
        write_image(Image.from_array(label[None], (0.5, 0.7)), lpath)
        cases.append(Case(case_id=f"d{i}", image_paths=(ipath,), label_path=lpath))
    dataset = Dataset(
        root=tmp_path,
        name="Disc",
        cases=tuple(cases),
        labels=LabelSpec(labels={"background": 0, "disc": 1}),
        channel_names={0: "rgb_to_0_1"},
    )
    plan = make_plan(extract_fingerprint(dataset, num_samples=1000), budget=PlanBudget())
    assert set(plan.configurations) == {"2d"}
    cache = preprocess_dataset(dataset, plan, None, tmp_path / "cache", workers=1)
    image, lab, props = cache.load("d0")
    assert image.shape == (1, 1, 60, 50)
    np.testing.assert_array_equal(lab[0, 0], label)
    assert props.spatial_shape == (60, 50)
