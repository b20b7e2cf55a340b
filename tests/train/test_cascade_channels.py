"""medseg.train.cascade: lazy one-hot channels, fold choice, low-res labels on the full grid."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medseg.train.cascade import (
    CascadeSource,
    StackedChannels,
    _folds_for,
    _labels_on_grid,
    one_hot,
)
from medseg.train.model_folder import ALL_FOLD
from medseg.train.sampling import crop_padded


def _case(rng: np.random.Generator):
    image = rng.normal(size=(2, 6, 7, 5)).astype(np.float32)
    previous = rng.integers(0, 4, size=(1, 6, 7, 5)).astype(np.uint8)
    return image, previous


def test_one_hot_has_one_channel_per_value():
    labels = np.array([[0, 1], [2, 3]])
    out = one_hot(labels, (1, 3))
    assert out.dtype == np.float32
    assert out.shape == (2, 2, 2)
    np.testing.assert_array_equal(out[0], labels == 1)
    np.testing.assert_array_equal(out[1], labels == 3)


def test_stacked_channels_equal_the_concatenated_array():
    image, previous = _case(np.random.default_rng(0))
    stacked = StackedChannels(image, previous, (1, 2, 3))
    dense = np.concatenate([image, np.stack([previous[0] == v for v in (1, 2, 3)])])
    assert stacked.shape == dense.shape
    np.testing.assert_array_equal(np.asarray(stacked), dense)
    # the sampler's padded crops (partly outside the image) and 2D slices read the same values
    for start in ((-2, 1, 3), (0, 0, 0), (4, 5, -1)):
        np.testing.assert_array_equal(
            crop_padded(stacked, start, (4, 4, 4)), crop_padded(dense, start, (4, 4, 4))
        )
    np.testing.assert_array_equal(stacked[:, 3], dense[:, 3])
    with pytest.raises(IndexError):
        stacked[0]


def test_stacked_channels_need_the_same_grid():
    image, previous = _case(np.random.default_rng(1))
    with pytest.raises(Exception, match="train the cascade again"):
        StackedChannels(image, previous[:, :-1], (1,))


def test_cascade_source_reads_the_cached_labels_beside_the_case(tmp_path, array_source):
    image, previous = _case(np.random.default_rng(2))
    label = np.zeros((1, 6, 7, 5), np.uint8)

    class Cache(array_source):
        directory = tmp_path

    np.save(tmp_path / "a_previous.npy", previous)
    source = CascadeSource(Cache({"a": (image, label)}), (1, 2))
    stacked, got_label, _ = source.load("a")
    assert stacked.shape == (4, 6, 7, 5)
    np.testing.assert_array_equal(np.asarray(stacked)[3], previous[0] == 2)
    assert got_label is label
    assert source.case_ids == ("a",)  # everything else is the cache's
    copied = copy.deepcopy(source)  # rebuilt as when pickled to augmentation workers
    np.testing.assert_array_equal(np.asarray(copied.load("a")[0]), np.asarray(stacked))
    with pytest.raises(Exception, match="previous-stage labels missing"):
        CascadeSource(Cache({"b": (image, label)}), (1,)).load("b")


def test_each_case_is_predicted_by_the_fold_that_left_it_out():
    splits = [{"train": ["b", "c"], "val": ["a"]}, {"train": ["a"], "val": ["b", "c"]}]
    assert _folds_for("b", [0, 1], splits) == ([1], "out-of-fold: fold 1")
    assert _folds_for("b", [0, ALL_FOLD], splits)[0] == [ALL_FOLD]
    folds, why = _folds_for("b", [0], splits)
    assert folds == [0]
    assert why.startswith("in-sample")


def test_low_resolution_outputs_become_labels_on_the_full_grid():
    rng = np.random.default_rng(3)
    logits = torch.from_numpy(rng.normal(size=(3, 5, 6, 4)).astype(np.float32))
    shape = (10, 13, 7)
    got = _labels_on_grid(logits, shape, None)
    reference = F.interpolate(logits[None], size=shape, mode="trilinear", align_corners=False)
    expected = reference[0].argmax(0).numpy()
    assert got.shape == shape
    assert (got == expected).mean() > 0.999  # float ties aside, the trilinear argmax
    painted = _labels_on_grid(logits, shape, None, region_order=(1, 2, 3))
    later_wins = np.where(reference[0, 2] > 0, 3, np.where(reference[0, 1] > 0, 2, 0))
    expected_regions = np.where(later_wins == 0, np.where(reference[0, 0] > 0, 1, 0), later_wins)
    assert (painted == expected_regions).mean() > 0.999
