"""Learned engine: input encoding, forward shapes, model folder round trip, a tiny training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.data import load_dataset
from medseg.errors import GeometryError, ModelFormatError
from medseg.interactive.learned import LearnedEngine
from medseg.interactive.network import (
    InteractiveModelConfig,
    build_network,
    encode,
    load_model,
    save_model,
)
from medseg.interactive.prompts import Box, Click
from medseg.interactive.session import Session
from medseg.interactive.training import InteractiveTrainConfig, train_interactive

SMALL = InteractiveModelConfig(size=32, channels=(4, 8, 16), strides=(2, 2), num_res_units=0)


@pytest.fixture
def engine() -> LearnedEngine:
    torch.manual_seed(0)
    return LearnedEngine(build_network(SMALL), SMALL)


def test_encode_resizes_and_keeps_every_click() -> None:
    image = torch.randn(1, 100, 60)
    positive = torch.zeros(100, 60, dtype=torch.bool)
    positive[99, 0] = True  # a corner click must survive shrinking
    out = encode(
        image, torch.ones(100, 60), positive, torch.zeros(100, 60), torch.zeros(100, 60), SMALL
    )
    assert out.shape == (5, 32, 32)
    assert out[1].min() == 1.0  # box channel
    assert out[2, 31, 0] == 1.0
    assert out[2].sum() == 3 * 3
    assert out[3].sum() == 0
    assert out[4].abs().sum() == 0


def test_network_maps_prompt_channels_to_one_logit_map() -> None:
    net = build_network(SMALL)
    assert net(torch.zeros(2, 5, 32, 32)).shape == (2, 1, 32, 32)


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


def test_model_folder_round_trip(tmp_path: Path, engine: LearnedEngine) -> None:
    save_model(engine.net, SMALL, tmp_path / "model")
    net, config = load_model(tmp_path / "model")
    assert config == SMALL
    for key, value in engine.net.state_dict().items():
        assert torch.equal(net.state_dict()[key], value)
    image = np.random.default_rng(0).random((1, 20, 20))
    a = engine.predict(image, [Click((5, 5))], None, spacing=(1.0, 1.0))
    b = LearnedEngine.load(tmp_path / "model").predict(
        image, [Click((5, 5))], None, spacing=(1.0, 1.0)
    )
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_broken_model_folders_raise_model_format_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="missing"):
        load_model(tmp_path)
    save_model(build_network(SMALL), SMALL, tmp_path)
    data = json.loads((tmp_path / "interactive.json").read_text())
    data["channels"] = [8, 16, 32]
    (tmp_path / "interactive.json").write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="architecture"):
        load_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelFormatError):
        load_model(tmp_path)


def test_tiny_training_run_gives_finite_loss_and_a_loadable_model(
    sphere_dataset: Path, tmp_path: Path
) -> None:
    config = InteractiveTrainConfig(iterations=4, batch_size=2, max_rounds=2, model=SMALL)
    result = train_interactive(load_dataset(sphere_dataset), tmp_path / "m", config=config)
    assert len(result.losses) == 4
    assert np.all(np.isfinite(result.losses))
    engine = LearnedEngine.load(tmp_path / "m")
    assert engine.config.training["iterations"] == 4
    assert engine.config.image_channels == 1


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


def test_3d_correction_acts_only_where_the_click_is() -> None:
    engine = LearnedEngine(EraseEverything(), SMALL)
    image = np.random.default_rng(0).random((1, 30, 20, 20))
    old = np.zeros((30, 20, 20), bool)
    old[:, 5:15, 5:15] = True
    # a background click away from the object: the network's wish to erase it is ignored
    off = engine.predict(image, [Click((3, 1, 1), positive=False)], old, spacing=(1.0,) * 3)
    assert np.array_equal(off >= 0.5, old)
    # a background click on the object: erased on that slice and propagated through the rest
    on = engine.predict(image, [Click((3, 10, 10), positive=False)], old, spacing=(1.0,) * 3)
    assert not (on >= 0.5).any()


def test_volume_box_samples_put_the_object_inside_the_box(sphere_dataset: Path) -> None:
    from medseg.interactive.training import _Slices, _volume_box_sample

    data = _Slices(load_dataset(sphere_dataset), (2,), (0, 1, 2))  # the cube: equal sections
    rng = np.random.default_rng(0)
    for entry in data.index:
        image, gt, _, box = _volume_box_sample(data, entry, rng, 32)
        assert image.shape == (1, 32, 32)
        assert gt.any()
        assert box[gt].all()  # every object pixel lies under the box cross-section
        assert not box.all()  # the crop's margin leaves background around the box
