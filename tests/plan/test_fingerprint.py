"""Fingerprint extraction against direct NumPy/SciPy measurements of the same files."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy import ndimage

from medseg.data.dataset import Dataset
from medseg.errors import DatasetError
from medseg.io import read_image
from medseg.plan import fingerprint as fingerprint_module
from medseg.plan.fingerprint import extract_fingerprint, load_or_extract_fingerprint


def _reference(dataset: Dataset):
    images = [read_image(c.image_paths[0]).array[0] for c in dataset.cases]
    labels = [read_image(c.label_path).array[0].astype(int) for c in dataset.cases]
    return images, labels


def test_shapes_spacing_and_crop(make_dataset):
    dataset = make_dataset(spacings=[(2.0, 1.0, 1.5), (2.5, 1.0, 1.5), (3.0, 1.0, 1.5)])
    fp = extract_fingerprint(dataset, num_samples=30_000)
    images, _ = _reference(dataset)
    assert fp.spacings == ((2.0, 1.0, 1.5), (2.5, 1.0, 1.5), (3.0, 1.0, 1.5))
    assert fp.shapes == ((16, 20, 18),) * 3
    for image, cropped, fraction in zip(
        images, fp.shapes_after_crop, fp.crop_fractions, strict=True
    ):
        nz = np.argwhere(image != 0)
        expected = tuple(int(v) for v in nz.max(axis=0) - nz.min(axis=0) + 1)
        assert cropped == expected
        assert fraction == pytest.approx(np.prod(expected) / image.size)
    assert fp.median_spacing == (2.5, 1.0, 1.5)
    assert fp.ndim == 3


def test_intensity_and_class_statistics(make_dataset):
    dataset = make_dataset(channels=("CT", "T2"))
    fp = extract_fingerprint(dataset, num_samples=300_000)
    images, labels = _reference(dataset)
    foreground = np.concatenate([im[lab > 0] for im, lab in zip(images, labels, strict=True)])
    stats = fp.intensity[0]
    assert stats.min == pytest.approx(foreground.min())
    assert stats.max == pytest.approx(foreground.max())
    assert stats.mean == pytest.approx(foreground.mean(), rel=0.01)
    assert stats.std == pytest.approx(foreground.std(), rel=0.03)
    assert stats.median == pytest.approx(np.median(foreground), rel=0.01)
    assert stats.percentile_00_5 == pytest.approx(np.percentile(foreground, 0.5), rel=0.02)
    assert stats.percentile_99_5 == pytest.approx(np.percentile(foreground, 99.5), rel=0.02)
    assert fp.intensity[1].mean == pytest.approx(2 * stats.mean, rel=1e-5)  # channel 2 = 2x
    counts = np.bincount(np.concatenate([lab.ravel() for lab in labels]))
    assert fp.class_voxels == {v: int(c) for v, c in enumerate(counts) if c}
    full = np.ones((3, 3, 3))
    n_inner = [ndimage.label(lab == 1, structure=full)[1] for lab in labels]
    assert fp.components[1].mean_count == pytest.approx(np.mean(n_inner))
    assert fp.components[3].median_size_voxels == 8  # one 2x2x2 lesion per case
    assert fp.channel_names == {0: "CT", 1: "T2"}
    assert fp.labels == dataset.labels.labels


def test_sampling_is_deterministic(make_dataset):
    dataset = make_dataset()
    assert extract_fingerprint(dataset, num_samples=5000) == extract_fingerprint(
        dataset, num_samples=5000
    )


def test_progress_callback(make_dataset):
    calls = []
    extract_fingerprint(
        make_dataset(n=2), on_progress=lambda d, t: calls.append((d, t)), num_samples=1000
    )
    assert calls == [(1, 2), (2, 2)]


def test_cache_reused_until_inputs_change(make_dataset, tmp_path, monkeypatch):
    dataset = make_dataset()
    cache = tmp_path / "fingerprint.json"
    first = load_or_extract_fingerprint(dataset, cache)
    assert cache.exists()

    def fail(*args, **kwargs):
        raise AssertionError("extracted again although the cache is current")

    monkeypatch.setattr(fingerprint_module, "extract_fingerprint", fail)
    assert load_or_extract_fingerprint(dataset, cache) == first
    monkeypatch.undo()
    label = dataset.cases[0].label_path
    stat = label.stat()
    os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    again = load_or_extract_fingerprint(dataset, cache)
    assert again.source_hash != first.source_hash


def test_no_labelled_cases_is_an_error(make_dataset):
    dataset = make_dataset(n=1)
    unlabelled = Dataset(
        root=dataset.root,
        name="x",
        cases=(),
        labels=dataset.labels,
        channel_names=dataset.channel_names,
    )
    with pytest.raises(DatasetError, match="no labelled cases"):
        extract_fingerprint(unlabelled)
