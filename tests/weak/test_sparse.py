"""Sparse-label simulators, the sparse dataset writer and the ignore label's zero gradient."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from weak_phantoms import LABELS, phantom_label, write_stray_value

from medseg.data import load_dataset
from medseg.data.marks import every_object_marked
from medseg.errors import DatasetError
from medseg.io import read_image
from medseg.train.losses import SegmentationLoss
from medseg.weak.sparse import (
    SparseConfig,
    check_sparse_values,
    click_label,
    make_sparse_dataset,
    naive_label,
    scribble_label,
    slice_label,
    sparse_coverage,
)

IGNORE = 3


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_scribbles_are_sparse_inside_their_class_and_mark_every_lesion() -> None:
    label = phantom_label()
    config = SparseConfig(every=4, stroke_classes=(2,), stroke_length=3)
    sparse = scribble_label(label, ignore=IGNORE, rng=_rng(), config=config)
    marked = sparse != IGNORE
    assert 0 < marked.mean() < 0.1
    np.testing.assert_array_equal(sparse[marked], label[marked])  # strokes never lie
    for value in (0, 1, 2):
        assert (sparse == value).any()
    lesions, count = ndimage.label(label == 2, np.ones((3, 3, 3), bool))
    assert count == 2
    for index in (1, 2):
        strokes = np.count_nonzero((lesions == index) & (sparse == 2))
        assert 1 <= strokes <= 3
    organ_slices = {int(z) for z in np.flatnonzero((sparse == 1).any(axis=(1, 2)))}
    assert len({z % 4 for z in organ_slices}) == 1  # every fourth slice


def test_max_stroke_cuts_each_region_stroke() -> None:
    label = phantom_label()
    whole = scribble_label(label, ignore=IGNORE, rng=_rng(1), config=SparseConfig(every=4))
    short = scribble_label(
        label, ignore=IGNORE, rng=_rng(1), config=SparseConfig(every=4, max_stroke=3)
    )
    assert np.count_nonzero(short != IGNORE) < np.count_nonzero(whole != IGNORE)
    marked = short != IGNORE
    np.testing.assert_array_equal(short[marked], label[marked])
    for z in range(label.shape[0]):
        for value in (0, 1, 2):
            assert np.count_nonzero(short[z] == value) <= 3
    again = scribble_label(
        label, ignore=IGNORE, rng=_rng(1), config=SparseConfig(every=4, max_stroke=3)
    )
    np.testing.assert_array_equal(short, again)


def test_simulators_are_deterministic_by_seed() -> None:
    label = phantom_label()
    for simulate in (scribble_label, slice_label):
        a = simulate(label, ignore=IGNORE, rng=_rng(5), config=SparseConfig(every=3))
        b = simulate(label, ignore=IGNORE, rng=_rng(5), config=SparseConfig(every=3))
        np.testing.assert_array_equal(a, b)
    offsets = {
        int(
            np.flatnonzero((slice_label(label, ignore=IGNORE, rng=_rng(s)) != IGNORE).any((1, 2)))[
                0
            ]
        )
        for s in range(20)
    }
    assert len(offsets) > 1  # the seed moves the annotated slices


def test_2d_maps_are_scribbled_as_one_slice() -> None:
    label = phantom_label()[8]
    config = SparseConfig(every=5, stroke_classes=(2,), stroke_length=2)
    sparse = scribble_label(label, ignore=IGNORE, rng=_rng(3), config=config)
    assert sparse.shape == label.shape
    marked = sparse != IGNORE
    np.testing.assert_array_equal(sparse[marked], label[marked])
    assert {0, 1, 2} <= set(np.unique(sparse).tolist())
    assert (
        np.count_nonzero(click_label(label, ignore=IGNORE, rng=_rng()) == 2) == 1
    )  # one lesion here
    with pytest.raises(DatasetError, match="3D"):
        slice_label(label, ignore=IGNORE, rng=_rng())


def test_clicks_mark_one_deep_voxel_per_component() -> None:
    label = phantom_label()
    clicks = click_label(label, ignore=IGNORE, rng=_rng())
    assert np.count_nonzero(clicks == 2) == 2  # two lesions
    assert np.count_nonzero(clicks == 1) == 1  # one organ
    organ = np.argwhere(clicks == 1)[0]
    depth = ndimage.distance_transform_edt(label == 1)
    assert depth[tuple(organ)] == depth.max()


def test_slices_and_naive_baseline() -> None:
    label = phantom_label()
    sparse = slice_label(label, ignore=IGNORE, rng=_rng(), config=SparseConfig(every=4))
    annotated = (sparse != IGNORE).all(axis=(1, 2))
    assert annotated.sum() == 4
    assert not (sparse[~annotated] != IGNORE).any()
    naive = naive_label(sparse, IGNORE)
    assert set(np.unique(naive)) <= {0, 1, 2}
    np.testing.assert_array_equal(naive[annotated], label[annotated])


def test_complete_label_holding_the_ignore_value_is_refused() -> None:
    label = phantom_label()
    label[0, 0, 0] = IGNORE
    with pytest.raises(DatasetError, match="ignore value 3"):
        scribble_label(label, ignore=IGNORE, rng=_rng())


def test_sparse_dataset_round_trip(phantom_dataset: Path, tmp_path: Path) -> None:
    out = make_sparse_dataset(
        phantom_dataset, tmp_path / "sparse", config=SparseConfig(every=4, stroke_classes=(2,))
    )
    dataset = load_dataset(out)
    assert dataset.labels.ignore == 3
    assert len(dataset.labelled) == 3
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["weak_labels"]["kind"] == "scribbles"
    coverage = sparse_coverage(out)
    assert 0 < coverage["mean"] < 0.1
    assert meta["weak_labels"]["annotated_fraction"] == pytest.approx(coverage["mean"], abs=1e-5)
    first = read_image(out / "labelsTr" / "case_0.nii.gz")
    original = read_image(phantom_dataset / "labelsTr" / "case_0.nii.gz")
    assert first.same_geometry(original)
    naive = make_sparse_dataset(phantom_dataset, tmp_path / "naive", kind="naive-scribbles")
    assert load_dataset(naive).labels.ignore is None
    assert "every_object_marked" not in json.loads((naive / "dataset.json").read_text())


def test_stroked_classes_are_declared_with_a_reach_that_covers_every_voxel(
    phantom_dataset: Path, tmp_path: Path
) -> None:
    config = SparseConfig(every=4, stroke_classes=(2,), stroke_length=2)
    out = make_sparse_dataset(phantom_dataset, tmp_path / "sparse", config=config)
    declared = every_object_marked(load_dataset(out))
    assert set(declared) == {2}
    farthest = 0.0
    for case in load_dataset(out).labelled:
        sparse = read_image(case.label_path).array[0]
        complete = read_image(phantom_dataset / "labelsTr" / case.label_path.name).array[0]
        mm = np.array([2.0, 1.0, 1.0])  # the phantoms' spacing, (z, y, x)
        marks = np.argwhere(sparse == 2) * mm
        lesion = np.argwhere(complete == 2) * mm
        # brute force: each lesion voxel's distance to its nearest stroke voxel
        nearest = np.sqrt(((lesion[:, None] - marks[None]) ** 2).sum(-1)).min(axis=1)
        farthest = max(farthest, float(nearest.max()))
    assert farthest > 0
    assert declared[2] == pytest.approx(farthest, abs=1e-3)
    assert declared[2] >= farthest
    unstroked = make_sparse_dataset(phantom_dataset, tmp_path / "plain", config=SparseConfig())
    assert every_object_marked(load_dataset(unstroked)) == {}


def test_scribble_values_outside_the_classes_are_a_clear_error(
    phantom_dataset: Path, tmp_path: Path
) -> None:
    out = make_sparse_dataset(phantom_dataset, tmp_path / "sparse")
    path = out / "labelsTr" / "case_1.nii.gz"
    array = write_stray_value(path)
    with pytest.raises(DatasetError, match=r"case_1.nii.gz: label values \[7\]"):
        sparse_coverage(out)
    with pytest.raises(DatasetError, match="not classes"):
        check_sparse_values(array, LABELS, path)
    with pytest.raises(DatasetError, match="no 'ignore' label"):
        sparse_coverage(phantom_dataset)


@pytest.mark.parametrize("regions", [(), ((1, 2), (2,))])
def test_ignored_voxels_get_exactly_zero_gradient(regions) -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (2, 1, 6, 6, 6), generator=generator)
    target[:, :, :3] = IGNORE
    channels = len(regions) or 3
    logits = torch.randn(2, channels, 6, 6, 6, generator=generator, requires_grad=True)
    SegmentationLoss(regions=regions, ignore_label=IGNORE)(logits, target).backward()
    grad = logits.grad
    assert grad is not None
    assert torch.count_nonzero(grad[:, :, :3]) == 0
    assert torch.count_nonzero(grad[:, :, 3:]) > 0
