"""Augmentation: image and label stay aligned; seeded; labels keep their values."""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import RandAffined, RandFlipd

from medseg.train.augment import augment_batch, build_augmentation
from medseg.train.sampling import Batch


def _batch() -> Batch:
    rng = np.random.default_rng(0)
    label = np.zeros((2, 1, 12, 12, 12), np.int16)
    label[:, 0, 2:6, 3:9, 1:4] = 1
    label[:, 0, 7:10, 2:5, 6:11] = 2
    image = label.astype(np.float32) * 10 + rng.normal(0, 0.1, label.shape).astype(np.float32)
    return Batch(image=image, label=label, forced=np.zeros(2, bool))


def _only(transform, kind, prob=1.0):
    for t in transform.transforms:
        t.prob = prob if isinstance(t, kind) else 0.0
    return transform


def test_flip_moves_image_and_label_together() -> None:
    transform = _only(build_augmentation(3, mirror_axes=(0, 2)), RandFlipd)
    batch = _batch()
    image, label = augment_batch(batch, transform, seed=0)
    expected = np.flip(batch.label, axis=(2, 4))
    assert np.array_equal(label.numpy(), expected)
    np.testing.assert_allclose(image.numpy(), np.flip(batch.image, axis=(2, 4)))


def test_affine_keeps_alignment() -> None:
    transform = _only(build_augmentation(3), RandAffined)
    batch = _batch()
    image, label = augment_batch(batch, transform, seed=3)
    assert not np.array_equal(label.numpy(), batch.label)  # something moved
    agree = (np.round(image.numpy() / 10).clip(0, 2) == label.numpy()).mean()
    assert agree > 0.9
    assert set(np.unique(label.numpy())) <= {0, 1, 2}


def test_full_pipeline_is_seeded_and_keeps_label_values() -> None:
    batch = _batch()
    transform = build_augmentation(3, mirror_axes=(0, 1, 2), elastic_prob=0.5)
    a = augment_batch(batch, transform, seed=11)
    b = augment_batch(batch, transform, seed=11)
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    assert a[0].shape == (2, 1, 12, 12, 12)
    assert a[0].dtype == torch.float32
    assert a[1].dtype == torch.int16
    assert set(np.unique(a[1].numpy())) <= {0, 1, 2}


def test_2d_pipeline_runs() -> None:
    rng = np.random.default_rng(0)
    batch = Batch(
        image=rng.normal(size=(2, 1, 16, 16)).astype(np.float32),
        label=(rng.random((2, 1, 16, 16)) > 0.5).astype(np.int16),
        forced=np.zeros(2, bool),
    )
    image, label = augment_batch(batch, build_augmentation(2, mirror_axes=(0, 1)), seed=1)
    assert image.shape == (2, 1, 16, 16)
    assert label.shape == (2, 1, 16, 16)
