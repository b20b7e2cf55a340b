"""Planar (2D / 2.5D) prediction along each plane maps back to the input's axes exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from planar_phantom import BOX, SHAPE, box_image, planar_plan
from torch import nn

from medseg.errors import GeometryError
from medseg.infer import Predictor
from medseg.io import Image
from medseg.plan.plan import Plan
from medseg.preprocess import preprocess_image
from medseg.train.model_folder import ModelFolder, save_fold, save_model_folder
from medseg.train.networks import build_network


class ChannelOracle(nn.Module):
    """Label 1 where input channel ``channel`` is above 0.5: a 'network' whose answer is known."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.channel = channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = (x[:, self.channel] - 0.5) * 20
        return torch.stack([-fg, fg, torch.full_like(fg, -50.0)], dim=1)


def oracle_predictor(tmp_path: Path, plan: Plan, channel: int, monkeypatch) -> Predictor:
    save_model_folder(tmp_path, plan, configuration="2.5d")
    config = plan.configuration()
    net = build_network(config.network, plan.input_channels(), plan.num_classes, 2)
    save_fold(tmp_path, 0, net)
    monkeypatch.setattr(
        ModelFolder, "build_network", lambda self, fold, device: ChannelOracle(channel)
    )
    return Predictor(tmp_path, device="cpu", tta=False, postprocess=False)


@pytest.mark.parametrize("transpose", [(), (2, 0, 1)])
@pytest.mark.parametrize("plane", [0, 1, 2])
def test_each_plane_maps_back_to_the_input_axes(tmp_path, monkeypatch, plane, transpose) -> None:
    """The oracle reads the *next* slice (offset +1 of 2 neighbours): the box comes back
    shifted by one voxel along exactly the plane's image axis, the last slice repeated."""
    neighbours = 2
    plan = planar_plan(plane, neighbours, transpose)
    predictor = oracle_predictor(tmp_path, plan, neighbours + 1, monkeypatch)
    image = box_image()
    labels = predictor.predict_image(image).labels
    axis = (transpose or (0, 1, 2))[plane]  # the image axis the network's plane is
    size = SHAPE[axis]
    index = np.minimum(np.arange(size) + 1, size - 1)
    expected = np.take(image.array[0] > 0.5, index, axis=axis).astype(np.uint8)
    assert labels.array.shape == (1, *SHAPE)
    assert np.array_equal(labels.array[0], expected)
    assert labels.spacing == image.spacing
    assert labels.origin == image.origin
    shifted = np.zeros(SHAPE, np.uint8)
    shifted[
        tuple(slice(s.start - (a == axis), s.stop - (a == axis)) for a, s in enumerate(BOX))
    ] = 1
    assert np.array_equal(labels.array[0], shifted)  # the box's end slices are inside the image


def test_centre_channel_reproduces_the_box_on_every_plane(tmp_path, monkeypatch) -> None:
    for plane in (0, 1, 2):
        plan = planar_plan(plane, 1, ())
        predictor = oracle_predictor(tmp_path / str(plane), plan, 1, monkeypatch)
        labels = predictor.predict_image(box_image(), probabilities=True)
        assert np.array_equal(labels.labels.array[0], box_image().array[0].astype(np.uint8))
        assert labels.probabilities.array.shape == (3, *SHAPE)


def test_2d_image_with_a_plane_other_than_0_is_refused() -> None:
    plan = planar_plan(1, 0, ())
    image = Image.from_array(np.ones((1, 12, 10), np.float32), (0.8, 1.1))
    with pytest.raises(GeometryError, match="2D image has one plane"):
        preprocess_image(image, plan)
    ok = dataclasses.replace(plan.configuration(), plane=0, spacing=(0.8, 1.1))
    array, _ = preprocess_image(image, plan.with_configuration(ok))
    assert array.shape == (1, 1, 12, 10)
