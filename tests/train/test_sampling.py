"""Patch sampler: foreground oversampling, shapes, padding, 2D slices, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.train.sampling import PatchSampler, crop_padded, forced_count


@pytest.fixture
def sparse(array_source):
    """30^3 volumes whose foreground is one 2^3 cube (label 1) and one voxel (label 2)."""
    cases = {}
    for i in range(3):
        label = np.zeros((1, 30, 30, 30), np.int16)
        label[0, 5 + i : 7 + i, 20:22, 3:5] = 1
        label[0, 25, 25 - i, 10] = 2
        image = np.random.default_rng(i).normal(size=label.shape).astype(np.float32)
        cases[f"c{i}"] = (image, label)
    return array_source(cases)


@pytest.mark.parametrize(
    ("batch", "fraction", "expected"),
    [(2, 0.33, 1), (3, 0.33, 1), (4, 0.5, 2), (5, 0.0, 0), (2, 1.0, 2)],
)
def test_forced_count_follows_nnunet_rounding(batch: int, fraction: float, expected: int) -> None:
    assert forced_count(batch, fraction) == expected


def test_forced_samples_contain_foreground_and_others_are_random(sparse) -> None:
    sampler = PatchSampler(sparse, ["c0", "c1", "c2"], (6, 6, 6), 4, 0.5, foreground_labels=(1, 2))
    rng = np.random.default_rng(0)
    forced_hits, free_hits = [], []
    for _ in range(40):
        batch = sampler.sample(rng)
        assert batch.forced.tolist() == [False, False, True, True]
        has_fg = (batch.label > 0).reshape(4, -1).any(axis=1)
        forced_hits += has_fg[2:].tolist()
        free_hits += has_fg[:2].tolist()
    assert all(forced_hits)
    assert np.mean(free_hits) < 0.5  # random 6^3 patches rarely hit a 2^3 cube in 30^3
    # each present class equally likely: the single-voxel class 2 is centred about half the time
    labels_seen = [set(np.unique(sampler.sample(rng).label[3])) for _ in range(60)]
    share_rare = np.mean([2 in s for s in labels_seen])
    assert 0.3 < share_rare < 0.7


def test_oversample_labels_centre_on_rare_class(sparse) -> None:
    sampler = PatchSampler(
        sparse,
        ["c0", "c1", "c2"],
        (4, 4, 4),
        2,
        0.5,
        foreground_labels=(1, 2),
        oversample_labels=(2,),
    )
    rng = np.random.default_rng(1)
    for _ in range(20):
        assert (sampler.sample(rng).label[1] == 2).any()


def test_shapes_dtypes_and_padding_of_small_images(array_source) -> None:
    source = array_source(
        {"tiny": (np.ones((2, 3, 4, 5), np.float32), np.ones((1, 3, 4, 5), np.int16))}
    )
    sampler = PatchSampler(source, ["tiny"], (8, 8, 8), 3, 0.33, foreground_labels=(1,))
    batch = sampler.sample(np.random.default_rng(0))
    assert batch.image.shape == (3, 2, 8, 8, 8)
    assert batch.image.dtype == np.float32
    assert batch.label.shape == (3, 1, 8, 8, 8)
    assert batch.label.dtype == np.int16
    # the whole image fits in the patch: every voxel of it is there once, the rest is padding
    assert batch.image.sum(axis=(1, 2, 3, 4)).tolist() == [2 * 3 * 4 * 5] * 3
    assert batch.label.sum(axis=(1, 2, 3, 4)).tolist() == [3 * 4 * 5] * 3


def test_2d_slices_along_axis_0(sparse) -> None:
    sampler = PatchSampler(sparse, ["c0"], (6, 6), 2, 1.0, foreground_labels=(1, 2))
    batch = sampler.sample(np.random.default_rng(3))
    assert batch.image.shape == (2, 1, 6, 6)
    assert (batch.label > 0).reshape(2, -1).any(axis=1).all()


def test_same_seed_same_batch(sparse) -> None:
    sampler = PatchSampler(sparse, ["c0", "c1", "c2"], (8, 8, 8), 2, 0.5, foreground_labels=(1, 2))
    a = sampler.sample(np.random.default_rng(7))
    b = sampler.sample(np.random.default_rng(7))
    c = sampler.sample(np.random.default_rng(8))
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.label, b.label)
    assert not np.array_equal(a.image, c.image)


def test_crop_padded_matches_numpy_pad() -> None:
    array = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    start, size = (-2, 3), (7, 6)
    padded = np.pad(array, ((0, 0), (2, 2), (0, 3)))
    expected = padded[:, 0:7, 3:9]
    assert np.array_equal(crop_padded(array, start, size), expected)


def test_empty_case_list_is_rejected(sparse) -> None:
    with pytest.raises(ValueError, match="at least one case"):
        PatchSampler(sparse, [], (4, 4, 4), 2, 0.5, foreground_labels=(1,))


def test_split_components_matches_scipy_labelling() -> None:
    from scipy import ndimage

    from medseg.train.sampling import split_components

    rng = np.random.default_rng(4)
    mask = rng.random((12, 13, 14)) > 0.85
    voxels = np.argwhere(mask)
    parts = split_components(voxels)
    ref, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert len(parts) == count
    assert sum(len(p) for p in parts) == len(voxels)
    for part in parts:  # each part is exactly one scipy component
        ids = ref[tuple(part.T)]
        assert len(set(ids.tolist())) == 1
        assert len(part) == int((ref == ids[0]).sum())
    assert split_components(np.zeros((0, 3), int)) == []


def test_rare_components_are_centred_equally_often_whatever_their_size(array_source) -> None:
    label = np.zeros((1, 40, 40, 40), np.int16)
    label[0, 2:12, 2:12, 2:12] = 3  # 1000-voxel lesion
    label[0, 30, 30, 30] = 3  # 1-voxel lesion
    label[0, 20:22, 5:35, 5:35] = 1
    image = np.zeros(label.shape, np.float32)
    sampler = PatchSampler(
        array_source({"a": (image, label)}),
        ["a"],
        (4, 4, 4),
        1,
        1.0,
        foreground_labels=(1, 3),
        oversample_labels=(3,),
    )
    rng = np.random.default_rng(0)
    # a patch holding exactly one lesion voxel was centred on the small lesion: about half of
    # them, where drawing per voxel would give 1 in 1001
    hits = [sampler.sample(rng).label[0, 0] for _ in range(400)]
    in_small = np.mean([(h == 3).sum() == 1 for h in hits])
    assert 0.4 < in_small < 0.6
