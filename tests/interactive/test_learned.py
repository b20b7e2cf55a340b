"""Learned engine: 2D and 3D prediction, processing axis, focused corrections."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.errors import GeometryError
from medseg.interactive.learned import LearnedEngine
from medseg.interactive.network import InteractiveModelConfig
from medseg.interactive.prompts import Box, Click
from medseg.interactive.session import Session


def test_predict_2d_returns_probabilities_of_the_roi_shape(engine: LearnedEngine) -> None:
    prob = engine.predict(
        np.random.default_rng(0).random((1, 45, 70)), [Click((20, 30))], None, spacing=(1.0, 1.0)
    )
    assert prob.shape == (45, 70)
    assert prob.dtype == np.float32
    assert prob.min() >= 0.0
    assert prob.max() <= 1.0


def test_predict_3d_stays_within_a_3d_box(engine: LearnedEngine) -> None:
    image = np.random.default_rng(0).random((1, 12, 20, 24))
    prob = engine.predict(image, [Box((3, 2, 2), (8, 17, 20))], None, spacing=(1.0,) * 3)
    assert prob.shape == (12, 20, 24)
    assert np.all(prob[:3] == 0)
    assert np.all(prob[9:] == 0)


def test_session_with_learned_engine_on_any_axis(engine: LearnedEngine) -> None:
    session = Session(np.random.default_rng(0).random((16, 18, 20)), engine)
    session.add_box((2, 3), (10, 12), axis=2, index=9)
    assert session.predict().mask.shape == (16, 18, 20)
    assert engine._choose_axis(session.prompts, (1.0, 1.0, 1.0)) == 2
    assert engine._choose_axis([Click((1, 1, 1))], (4.0, 1.0, 1.0)) == 0
    assert engine._choose_axis([Click((1, 1, 1))], (1.0, 1.0, 5.0)) == 2


def test_channel_mismatch_is_an_error(engine: LearnedEngine) -> None:
    with pytest.raises(GeometryError, match="channel"):
        engine.predict(np.zeros((2, 8, 8)), [Click((1, 1))], None, spacing=(1.0, 1.0))


def test_focus_keeps_only_changes_connected_to_the_clicks() -> None:
    from medseg.interactive.learned import _focus

    old = np.zeros((20, 20), bool)
    old[2:6, 2:6] = True
    prob = np.zeros((20, 20), np.float32)
    prob[10:14, 10:14] = 1.0  # a change at the click
    prob[16:19, 1:4] = 1.0  # a change far from any click
    anchor = np.zeros((20, 20), bool)
    anchor[12, 12] = True
    mask = _focus(prob, old, anchor) >= 0.5
    assert mask[10:14, 10:14].all()  # added where the user clicked
    assert mask[2:6, 2:6].all()  # the old object far away is kept although prob dropped it
    assert not mask[16:19, 1:4].any()  # the unrelated change is discarded


class EraseEverything(torch.nn.Module):
    """A stand-in network whose answer is always "background"."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1, *x.shape[2:]), -10.0)


def test_3d_correction_acts_only_where_the_click_is(small_config: InteractiveModelConfig) -> None:
    engine = LearnedEngine(EraseEverything(), small_config)
    image = np.random.default_rng(0).random((1, 30, 20, 20))
    old = np.zeros((30, 20, 20), bool)
    old[:, 5:15, 5:15] = True
    # a background click away from the object: the network's wish to erase it is ignored
    off = engine.predict(image, [Click((3, 1, 1), positive=False)], old, spacing=(1.0,) * 3)
    assert np.array_equal(off >= 0.5, old)
    # a background click on the object: erased on that slice and, like a ball as wide as the
    # erased 10 x 10 square (radius about 5.6), on the 5 slices either side; farther slices keep
    on = engine.predict(image, [Click((12, 10, 10), positive=False)], old, spacing=(1.0,) * 3)
    assert not (on[7:18] >= 0.5).any()
    assert np.array_equal(on[:7] >= 0.5, old[:7])
    assert np.array_equal(on[18:] >= 0.5, old[18:])
    # with slices twice as thick as the pixels are wide, the edit reaches half as many slices
    thick = engine.predict(image, [Click((12, 10, 10), positive=False)], old, spacing=(2.0, 1, 1))
    assert not (thick[10:15] >= 0.5).any()
    assert np.array_equal(thick[15:] >= 0.5, old[15:])


class BrightIsObject(torch.nn.Module):
    """A stand-in network: object wherever the (z-scored) image is bright."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10.0 * (x[:, :1] - 1.0)


def test_first_3d_box_predicts_each_boxed_slice(small_config: InteractiveModelConfig) -> None:
    engine = LearnedEngine(BrightIsObject(), small_config)
    image = np.zeros((1, 20, 24, 24), np.float32)
    image[0, 2:5, 8:16, 8:16] = 1.0
    image[0, 14:16, 8:14, 8:14] = 1.0  # a second part, cut off from the first by empty slices
    prob = engine.predict(image, [Box((0, 4, 4), (18, 19, 19))], None, spacing=(1.0,) * 3)
    expected = np.zeros((20, 24, 24), bool)
    expected[2:5, 8:16, 8:16] = True
    expected[14:16, 8:14, 8:14] = True
    assert np.array_equal(prob >= 0.5, expected)


def test_a_click_propagates_until_the_object_ends(small_config: InteractiveModelConfig) -> None:
    engine = LearnedEngine(BrightIsObject(), small_config)
    image = np.zeros((1, 20, 24, 24), np.float32)
    image[0, 2:9, 8:16, 8:16] = 1.0
    image[0, 12:15, 8:16, 8:16] = 1.0  # another object beyond an empty slice gap
    prob = engine.predict(image, [Click((5, 10, 10))], None, spacing=(1.0,) * 3)
    expected = np.zeros((20, 24, 24), bool)
    expected[2:9, 8:16, 8:16] = True
    assert np.array_equal(prob >= 0.5, expected)


def test_clicks_are_respected_whatever_the_network_says() -> None:
    from medseg.interactive.learned import respect_clicks

    prob = np.zeros((30, 30, 30), np.float32)
    prob[2:5, 2:5, 2:5] = 0.9  # a small spurious blob
    prob[10:28, 10:28, 10:28] = 0.9  # a large object
    prompts = [
        Click((3, 3, 3), positive=False),  # on the blob: the whole blob goes
        Click((19, 19, 19), positive=False),  # inside the large object: a hole of radius 2
        Click((0, 29, 0), positive=True),  # on background: object around it
    ]
    mask = respect_clicks(prob, prompts) >= 0.5
    assert not mask[2:5, 2:5, 2:5].any()
    hole = ~mask[10:28, 10:28, 10:28]
    assert hole.sum() == 33  # the voxels of a ball of radius 2
    assert hole[9, 9, 7]
    assert hole[9, 9, 11]
    assert not hole[9, 9, 6]
    assert mask[[0, 1, 0], [29, 29, 28], [0, 0, 0]].all()
    assert not mask[1, 28, 0]
    assert (prob >= 0.5).sum() - mask.sum() == 27 + 33 - 4  # nothing else moved


def test_a_blob_holding_a_positive_click_is_only_dented() -> None:
    from medseg.interactive.learned import respect_clicks

    prob = np.zeros((40, 40), np.float32)
    prob[5:9, 5:15] = 1.0
    prompts = [Click((6, 6), positive=True), Click((7, 13), positive=False)]
    mask = respect_clicks(prob, prompts) >= 0.5
    assert mask[6, 6]
    assert mask[5, 5]
    assert not mask[7, 11:16].any()  # radius-2 disk around the background click
    assert mask[7, 10]
