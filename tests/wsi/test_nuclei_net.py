"""The learned nuclei head: targets, a short training run, save/load, instance output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.errors import ModelFormatError
from medseg.wsi.nuclei_net import (
    NucleiHead,
    NucleiHeadConfig,
    NucleiUNet,
    object_probability,
    train_nuclei_head,
)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_object_probability_is_one_at_centres_and_zero_outside():
    labels = np.zeros((20, 30), np.int32)
    labels[2:9, 2:9] = 1  # 7 x 7: centre pixel (5, 5)
    labels[10:19, 12:28] = 2
    prob = object_probability(labels)
    assert prob[5, 5] == 1.0
    assert prob[labels == 0].max() == 0.0
    assert prob[2, 2] == pytest.approx(1 / 4)  # EDT 1 at the corner, 4 at the centre
    assert prob[labels == 2].max() == 1.0


def test_network_shapes():
    out = NucleiUNet(4)(torch.zeros(2, 1, 32, 48))
    assert out.shape == (2, 2, 32, 48)


def test_short_training_lowers_the_loss_and_round_trips(tmp_path):
    config = NucleiHeadConfig(width=4, patch=32, batch_size=2, pool=4, seconds=60,
                              max_iterations=25, learning_rate=1e-2)  # fmt: skip
    summary = train_nuclei_head(tmp_path / "head", config)
    assert summary.iterations == 25
    assert summary.last_loss < summary.first_loss
    head = NucleiHead(tmp_path / "head")
    assert head.config == config
    image = np.zeros((1, 30, 42), np.float32)
    maps = head.maps(image)
    assert maps.shape == (2, 30, 42)
    assert head.predict(image).shape == (30, 42)


def test_missing_head_is_a_model_format_error(tmp_path):
    with pytest.raises(ModelFormatError, match="not a nuclei head"):
        NucleiHead(tmp_path)
