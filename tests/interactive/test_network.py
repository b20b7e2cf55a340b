"""The promptable network: input encoding, forward shapes, the model folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.errors import ConfigError, ModelFormatError
from medseg.interactive.learned import LearnedEngine
from medseg.interactive.network import (
    InteractiveModelConfig,
    build_network,
    encode,
    load_model,
    save_model,
)
from medseg.interactive.prompts import Click


def test_encode_resizes_and_keeps_every_click(small_config: InteractiveModelConfig) -> None:
    image = torch.randn(2, 1, 100, 60)
    positive = torch.zeros(2, 100, 60, dtype=torch.bool)
    positive[0, 99, 0] = True  # a corner click must survive shrinking
    box = torch.zeros(2, 100, 60)
    box[0] = 1.0
    out = encode(
        image, box, positive, torch.zeros(2, 100, 60), torch.zeros(2, 100, 60), small_config
    )
    assert out.shape == (2, 5, 32, 32)
    assert out[0, 1].min() == 1.0  # box channel
    assert out[0, 2, 31, 0] == 1.0
    assert out[0, 2].sum() == 3 * 3
    assert out[0, 3].sum() == 0
    assert out[0, 4].abs().sum() == 0
    assert out[1, 1:4].sum() == 0  # the other crop of the batch has no prompts


def test_batched_normalisation_equals_one_slice_at_a_time() -> None:
    from medseg.interactive.intensity import normalize_intensity

    rng = np.random.default_rng(0)
    slices = rng.gamma(2.0, 50.0, size=(4, 2, 30, 20))
    slices[2, 1] = 7.0  # a constant channel becomes zeros
    batched = normalize_intensity(slices, spatial_dims=2)
    for k in range(4):
        np.testing.assert_allclose(batched[k], normalize_intensity(slices[k]), atol=1e-5)
    assert not batched[2, 1].any()
    np.testing.assert_allclose(batched[0, 0].std(), 1.0, atol=1e-5)


def test_network_maps_prompt_channels_to_one_logit_map(
    small_config: InteractiveModelConfig,
) -> None:
    net = build_network(small_config)
    assert net(torch.zeros(2, 5, 32, 32)).shape == (2, 1, 32, 32)


def test_model_folder_round_trip(
    tmp_path: Path, engine: LearnedEngine, small_config: InteractiveModelConfig
) -> None:
    save_model(engine.net, small_config, tmp_path / "model")
    net, config = load_model(tmp_path / "model")
    assert config == small_config
    for key, value in engine.net.state_dict().items():
        assert torch.equal(net.state_dict()[key], value)
    image = np.random.default_rng(0).random((1, 20, 20))
    a = engine.predict(image, [Click((5, 5))], None, spacing=(1.0, 1.0))
    b = LearnedEngine.load(tmp_path / "model").predict(
        image, [Click((5, 5))], None, spacing=(1.0, 1.0)
    )
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_broken_model_folders_raise_model_format_errors(
    tmp_path: Path, small_config: InteractiveModelConfig
) -> None:
    with pytest.raises(ModelFormatError, match="missing"):
        load_model(tmp_path)
    save_model(build_network(small_config), small_config, tmp_path)
    data = json.loads((tmp_path / "interactive.json").read_text())
    data["channels"] = [8, 16, 32]
    (tmp_path / "interactive.json").write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="architecture"):
        load_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelFormatError):
        load_model(tmp_path)


def test_invalid_model_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="multiple of 8"):
        InteractiveModelConfig(size=100)
    with pytest.raises(ConfigError, match="one more level"):
        InteractiveModelConfig(channels=(8, 16), strides=(2, 2))
