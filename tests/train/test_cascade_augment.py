"""medseg.train.cascade_augment: the previous stage's channels in the training augmentation."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from medseg.train.augment import build_augmentation, training_transform
from medseg.train.cascade_augment import (
    RandPerturbPreviousd,
    _drop_component,
    _morphology,
)


def _one_hot_sample(seed: int = 0) -> dict[str, torch.Tensor]:
    """Image channel + two one-hot channels: a ball (label 1) with a core (label 2)."""
    grid = np.indices((16, 16, 16)) - 8
    dist = np.sqrt((grid**2).sum(0))
    labels = np.where(dist < 2.5, 2, np.where(dist < 6, 1, 0))
    image = np.random.default_rng(seed).normal(size=(1, 16, 16, 16)).astype(np.float32)
    previous = np.stack([labels == 1, labels == 2]).astype(np.float32)
    return {
        "image": torch.from_numpy(np.concatenate([image, previous])),
        "label": torch.from_numpy(labels[None].astype(np.int16)),
    }


def test_morphology_keeps_the_channels_one_hot_and_changes_them():
    channels = _one_hot_sample()["image"][1:].numpy() > 0.5
    changed = 0
    for seed in range(10):
        out = _morphology(channels, np.random.default_rng(seed))
        assert out.dtype == bool
        assert out.sum(0).max() <= 1  # a voxel gained by one channel is lost by the others
        changed += not np.array_equal(out, channels)
    assert changed >= 8


def test_only_small_components_are_removed():
    channels = np.zeros((1, 20, 20, 20), bool)
    channels[0, 2:18, 2:18, 2:18] = True  # 51 % of the patch: never removed
    channels[0, 0, 0, 0] = True  # a 1-voxel component
    out = _drop_component(channels, np.random.default_rng(0))
    assert not out[0, 0, 0, 0]
    assert out[0, 2:18, 2:18, 2:18].all()
    assert ndimage.label(out[0])[1] == 1


def test_perturbation_happens_in_some_samples_only():
    transform = RandPerturbPreviousd("previous")
    sample = _one_hot_sample()
    base = {"previous": sample["image"][1:]}
    same = 0
    for seed in range(40):
        transform.set_random_state(seed=seed)
        out = transform(base)["previous"]
        assert set(np.unique(out.numpy())) <= {0.0, 1.0}
        same += bool(torch.equal(out, base["previous"]))
    # nnU-Net's rates: operators in 40 % of the samples, component removal in 20 %
    assert 8 <= same <= 32


def test_augmentation_moves_but_never_rescales_the_previous_channels():
    sample = _one_hot_sample()
    for augment in (True, False):
        transform = training_transform(3, augment=augment, previous_stage_from=1)
        assert transform is not None
        for seed in range(6):
            transform.set_random_state(seed=seed)
            out = transform(dict(sample))
            image = torch.as_tensor(out["image"])
            assert image.shape == (3, 16, 16, 16)
            assert set(np.unique(image[1:].numpy())) <= {0.0, 1.0}
            assert image[1:].sum(0).max() <= 1
    assert training_transform(3, augment=False) is None


def test_intensity_transforms_leave_the_previous_channels_alone():
    transform = build_augmentation(3, previous_stage_from=1)
    sample = _one_hot_sample()
    touched = 0
    for seed in range(20):
        transform.set_random_state(seed=seed)
        out = torch.as_tensor(transform(dict(sample))["image"])
        touched += not torch.equal(out[0], sample["image"][0])
        assert set(np.unique(out[1:].numpy())) <= {0.0, 1.0}
    assert touched > 0  # the image channel itself was augmented
