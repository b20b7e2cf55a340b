"""The universal model shipped in the package: loads with safetensors alone, used by default."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from medseg.errors import ModelFormatError
from medseg.interactive import engine as engine_module
from medseg.interactive.engine import default_engine, load_engine, universal_model_dir
from medseg.interactive.learned import LearnedEngine
from medseg.interactive.network import InteractiveModelConfig, build_network
from medseg.interactive.session import Session


def test_weights_load_with_safetensors_alone_and_fit_the_architecture() -> None:
    folder = universal_model_dir()
    weights = folder / "model.safetensors"
    assert weights.stat().st_size <= 25 * 2**20
    arrays = load_file(str(weights))  # numpy only: no torch, no pickle
    config = json.loads((folder / "interactive.json").read_text())
    expected = build_network(
        InteractiveModelConfig(
            image_channels=config["image_channels"],
            size=config["size"],
            channels=tuple(config["channels"]),
            strides=tuple(config["strides"]),
            num_res_units=config["num_res_units"],
        )
    ).state_dict()
    assert set(arrays) == set(expected)
    for name, tensor in expected.items():
        assert arrays[name].shape == tuple(tensor.shape)
        assert np.isfinite(arrays[name]).all()
    assert config["training"]["iterations"] >= 1


def test_session_without_engine_uses_the_universal_model(
    disk_image: tuple[np.ndarray, np.ndarray],
) -> None:
    image, disk = disk_image
    session = Session(image)
    assert isinstance(session.engine, LearnedEngine)
    assert session.engine.name == "universal"
    coords = np.argwhere(disk)
    session.add_box(tuple(coords.min(0)), tuple(coords.max(0)))
    prediction = session.predict()
    assert prediction.mask.shape == disk.shape
    assert prediction.probabilities.dtype == np.float32
    assert load_engine("universal").name == default_engine().name == "universal"


def test_missing_weights_are_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(engine_module, "__file__", str(tmp_path / "engine.py"))
    with pytest.raises(ModelFormatError, match="universal model's weights are missing"):
        universal_model_dir()


def test_medseg_serve_gets_the_universal_model_by_default() -> None:
    from medseg.server.app import resolve_engine

    assert load_engine("learned").name == "universal"  # the name --engine documents
    assert resolve_engine(None).name == "universal"
