"""Training with simulated users: a tiny run, 3D-box samples, settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.data import load_dataset
from medseg.errors import ConfigError
from medseg.interactive.learned import LearnedEngine
from medseg.interactive.network import InteractiveModelConfig
from medseg.interactive.training import InteractiveTrainConfig, train_interactive


def test_tiny_training_run_gives_finite_loss_and_a_loadable_model(
    sphere_dataset: Path, tmp_path: Path, small_config: InteractiveModelConfig
) -> None:
    config = InteractiveTrainConfig(iterations=4, batch_size=2, max_rounds=2, model=small_config)
    result = train_interactive(load_dataset(sphere_dataset), tmp_path / "m", config=config)
    assert len(result.losses) == 4
    assert np.all(np.isfinite(result.losses))
    engine = LearnedEngine.load(tmp_path / "m")
    assert engine.config.training["iterations"] == 4
    assert engine.config.image_channels == 1


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


def test_invalid_training_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="iterations"):
        InteractiveTrainConfig(iterations=0)
