"""Universal training on generated tasks: checkpoints, resume, the task pool."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medseg.errors import ConfigError
from medseg.interactive.learned import LearnedEngine
from medseg.interactive.network import InteractiveModelConfig
from medseg.interactive.task_pool import TaskPool
from medseg.interactive.universal import UniversalTrainConfig, _task, train_universal


def _tiny(iterations: int, workers: int = 0) -> UniversalTrainConfig:
    return UniversalTrainConfig(
        workers=workers,
        hours=1.0,
        iterations=iterations,
        batch_size=2,
        max_rounds=1,
        pool_size=3,
        refresh_every=1,
        checkpoint_minutes=60,
        kinds=("shapes2d", "photo2d"),
        kind_weights=(0.5, 0.5),
        model=InteractiveModelConfig(size=32, channels=(4, 8), strides=(2,)),
    )


def test_run_writes_a_loadable_model_and_resumes_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "run"
    iterations: list[int] = []
    train_universal(out, config=_tiny(2), on_progress=lambda i, _f: iterations.append(i))
    first = json.loads((out / "state.json").read_text())
    assert first["iteration"] == len(iterations) == 2
    assert first["next_task"] == 3 + first["iteration"] - 1  # one new task per later iteration
    engine = LearnedEngine.load(out)
    assert engine.config.training["iterations"] == first["iteration"]
    moments = load_file(str(out / "optimizer.safetensors"))
    assert any(name.endswith("exp_avg") for name in moments)

    train_universal(out, config=_tiny(4))  # a larger budget continues the same run
    second = json.loads((out / "state.json").read_text())
    assert second["iteration"] == 4
    assert second["seconds"] > first["seconds"]
    assert second["losses"][: first["iteration"]] == first["losses"]
    assert second["rng"] != first["rng"]

    weights = load_file(str(out / "model.safetensors"))
    train_universal(out, config=_tiny(4))  # budget spent: nothing changes
    assert json.loads((out / "state.json").read_text())["iteration"] == 4
    for name, tensor in load_file(str(out / "model.safetensors")).items():
        assert torch.equal(tensor, weights[name])


def test_pool_picks_tasks_uniformly_not_labels() -> None:
    config = _tiny(1)
    pool = TaskPool([(i, _task(config, i)) for i in range(3)])
    rng = np.random.default_rng(0)
    slots = [pool.pick(rng)[0] for _ in range(600)]
    counts = np.bincount(slots, minlength=3)
    assert counts.min() > 150  # each of 3 tasks about 200 times, whatever its label count
    slot, value, axis, slices = pool.pick(rng)
    image, label = pool.plane(slot, axis, int(slices[0]))
    assert image.shape[0] == 1
    assert image.shape[1:] == label.shape
    assert (label == value).any()


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="hours"):
        UniversalTrainConfig(hours=0)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            UniversalTrainConfig(device="cuda")
    with pytest.raises(ConfigError, match="kind_weights"):
        UniversalTrainConfig(kinds=("shapes2d",), kind_weights=(0.5, 0.5))
    with pytest.raises(ConfigError, match="workers"):
        UniversalTrainConfig(workers=-1)


@pytest.mark.slow
def test_workers_make_the_batches_and_the_run_resumes_without_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_universal(out, config=_tiny(3, workers=2))
    state = json.loads((out / "state.json").read_text())
    assert state["iteration"] == 3
    # tasks from 3 on (0-2 are the in-process pool's): each worker filled its share of the
    # pool (3 // 2 = 1 task), then replaced one before each later batch; 3 batches from 2
    # workers mean at least 1 replacement, and batches still queued may have taken more
    assert state["next_task"] >= 3 + 2 + 1
    assert state["pool_ids"] == list(range(state["next_task"] - 3, state["next_task"]))
    assert all(np.isfinite(state["losses"]))
    train_universal(out, config=_tiny(5))  # in this process, from the newest tasks
    resumed = json.loads((out / "state.json").read_text())
    assert resumed["iteration"] == 5
    assert resumed["next_task"] == state["next_task"] + 2
    assert LearnedEngine.load(out).config.training["iterations"] == 5
