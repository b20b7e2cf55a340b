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
    calls: list[tuple[int, int]] = []
    result = train_interactive(
        load_dataset(sphere_dataset),
        tmp_path / "m",
        config=config,
        on_progress=lambda done, total: calls.append((done, total)),
    )
    assert len(result.losses) == 4
    assert [done for done, _ in calls] == [1, 2, 3, 4]
    assert all(done <= total <= 4 for done, total in calls)  # the iteration budget rules here
    assert calls[-1] == (4, 4)
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


def test_learning_rate_decays_by_cosine_over_iterations_or_time() -> None:
    from medseg.interactive.training import _cosine, _progress

    config = InteractiveTrainConfig(iterations=100, max_minutes=1.0)
    assert _progress(50, 0.0, config) == 0.5
    assert _progress(10, 45.0, config) == 0.75  # the clock runs out first
    rates = [_cosine(1.0, p) for p in np.linspace(0, 1, 11)]
    assert rates[0] == pytest.approx(1.0)
    assert rates[5] == pytest.approx(0.51)
    assert rates[-1] == pytest.approx(0.02)
    assert np.all(np.diff(rates) < 0)


def test_simulated_boxes_and_crops_contain_the_object() -> None:
    from medseg.interactive.training import _crop, _jittered_box

    rng = np.random.default_rng(0)
    mask = np.zeros((100, 90), bool)
    mask[30:50, 20:70] = True
    tight = 0
    for _ in range(200):
        box = _jittered_box(mask, rng)
        rows, cols = np.flatnonzero(box.any(1)), np.flatnonzero(box.any(0))
        assert box[mask].all()
        assert 30 - rows[0] <= 19
        assert rows[-1] - 49 <= 19
        tight += 30 - rows[0] <= 3 and cols[-1] - 69 <= 3
        crop = _crop(mask, mask.shape, rng)
        assert mask[crop].sum() == mask.sum()
    assert 100 < tight < 200  # mostly careful boxes, some sloppy ones


def test_imperfect_neighbours_stay_near_the_mask() -> None:
    from scipy import ndimage

    from medseg.interactive.training import _imperfect

    rng = np.random.default_rng(0)
    mask = np.zeros((64, 64), bool)
    mask[20:40, 15:45] = True
    outputs = [_imperfect(mask, rng) for _ in range(50)]
    reach = ndimage.binary_dilation(mask, iterations=12)  # 3 sigma of the widest blur
    assert all(out[~reach].sum() == 0 and out[28:32, 28:32].all() for out in outputs)
    assert sum(not np.array_equal(out, mask) for out in outputs) > 25


def test_a_batch_made_elsewhere_trains_exactly_as_one_made_in_the_step(
    sphere_dataset: Path, small_config: InteractiveModelConfig
) -> None:
    import torch

    from medseg.interactive.network import build_network
    from medseg.interactive.training import _Slices, simulate_first_prompts, train_step

    data = _Slices(load_dataset(sphere_dataset), (), (0, 1, 2))
    results = []
    for ready in (False, True):
        torch.manual_seed(0)
        net = build_network(small_config)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        rng = np.random.default_rng(3)
        batch = simulate_first_prompts(data, rng, 2, small_config.size) if ready else None
        loss = train_step(
            net,
            optimizer,
            None if ready else data,
            rng,
            batch=batch,
            batch_size=2,
            max_rounds=2,
            model_config=small_config,
            learning_rate=1e-3,
        )
        results.append((loss, [p.detach().clone() for p in net.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="data or a ready batch"):
        train_step(
            net,
            optimizer,
            None,
            rng,
            batch_size=2,
            max_rounds=0,
            model_config=small_config,
            learning_rate=1e-3,
        )
