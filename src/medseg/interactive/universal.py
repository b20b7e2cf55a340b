"""Train the universal promptable model on generated tasks, for hours, resumably.

The universal model is the learned engine's network trained on no user data: a pool of tasks
from :mod:`medseg.data.synthetic_tasks` (procedural label maps and bundled photographs), of
which one is replaced by a fresh task every ``refresh_every`` iterations, so that a long run
sees thousands of different images and label maps. Each step is
:func:`medseg.interactive.training.train_step`: crops of one class on one slice, a simulated
first prompt (CVPR-style 3D box, tight or loose box, clicks, strokes, a neighbour slice's
mask), then simulated corrections.

The run folder is a loadable model folder at every checkpoint, plus what resuming needs::

    OUT/interactive.json       model config; ``training`` holds iterations, hours, loss
    OUT/model.safetensors      weights
    OUT/optimizer.safetensors  Adam moments
    OUT/state.json             iteration, seconds, task counter, pool, RNG state, loss history

Calling :func:`train_universal` again on the same folder continues where it stopped (same
settings; a larger ``hours`` extends the cosine schedule). A GPU run is the same call with
``device="cuda"``, a larger batch and ``workers`` processes making the batches
(:mod:`medseg.interactive.task_pool`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from medseg._atomic import atomic_path
from medseg._config import from_jsonable, read_json, to_jsonable, write_json
from medseg.data.synthetic_tasks import TASK_KINDS, SegmentationTask
from medseg.errors import ConfigError
from medseg.interactive.network import (
    InteractiveModelConfig,
    build_network,
    load_model,
    save_model,
)
from medseg.interactive.task_pool import BatchWorkers, TaskPool, make_task
from medseg.interactive.training import _cosine, train_step

logger = logging.getLogger(__name__)
STATE_NAME = "state.json"
OPTIMIZER_NAME = "optimizer.safetensors"


@dataclass(frozen=True, kw_only=True)
class UniversalTrainConfig:
    """Settings of :func:`train_universal`.

    ``hours`` is the total budget over all resumed runs (the cosine learning-rate schedule
    spans it); ``pool_size`` tasks are held in memory and one is replaced every
    ``refresh_every`` iterations; ``checkpoint_minutes`` between checkpoints. ``iterations``
    optionally caps the total iteration count as well (whichever budget ends first).
    ``workers`` > 0 generates tasks and batches in that many worker processes
    (:class:`~medseg.interactive.task_pool.BatchWorkers`; the pool is shared out among them),
    which a GPU needs to be kept busy; like ``device`` it is a setting of each call, not of the
    run.
    """

    hours: float = 2.0
    iterations: int | None = None
    batch_size: int = 8
    learning_rate: float = 3e-3
    max_rounds: int = 5
    pool_size: int = 48
    refresh_every: int = 4
    checkpoint_minutes: float = 5.0
    kinds: tuple[str, ...] = TASK_KINDS
    kind_weights: tuple[float, ...] = (0.45, 0.3, 0.25)
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    bf16: bool = True
    model: InteractiveModelConfig = field(default_factory=InteractiveModelConfig)

    def __post_init__(self) -> None:
        if (
            self.hours <= 0
            or self.batch_size < 1
            or self.pool_size < 1
            or self.refresh_every < 1
            or self.workers < 0
        ):
            raise ConfigError(
                "need hours > 0, batch_size >= 1, pool_size >= 1, refresh_every >= 1, "
                f"workers >= 0; got {self.hours}, {self.batch_size}, {self.pool_size}, "
                f"{self.refresh_every}, {self.workers}"
            )
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {self.device!r}: this torch sees no CUDA device; use cpu")
        if len(self.kind_weights) != len(self.kinds):
            raise ConfigError(f"kind_weights {self.kind_weights} must match kinds {self.kinds}")


@dataclass
class _State:
    iteration: int = 0
    seconds: float = 0.0
    next_task: int = 0
    pool_ids: list[int] = field(default_factory=list)
    rng: dict[str, Any] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


def _task(config: UniversalTrainConfig, task_id: int) -> SegmentationTask:
    return make_task(config.seed, task_id, config.kinds, config.kind_weights)


def train_universal(
    out: Path,
    *,
    config: UniversalTrainConfig | None = None,
    on_progress: Callable[[int, float], None] | None = None,
) -> Path:
    """Train (or resume training) the universal model in the run folder ``out``.

    Parameters
    ----------
    out : Path
        Run folder; if it holds ``state.json`` the run resumes from its last checkpoint with
        the saved settings, except ``hours``, ``iterations``, ``checkpoint_minutes``,
        ``device`` and ``workers`` taken from ``config``.
    config : UniversalTrainConfig, optional
        Settings of a new run.
    on_progress : callable, optional
        ``on_progress(iteration, fraction_of_budget_done)`` after every iteration.

    Returns
    -------
    Path
        ``out``, a model folder loadable by :class:`~medseg.interactive.learned.LearnedEngine`.
    """
    out = Path(out)
    config = config or UniversalTrainConfig()
    state, net, optimizer, config = _start(out, config)
    workers = None
    if config.workers:
        workers = BatchWorkers(
            config.workers,
            {
                "seed": config.seed,
                "kinds": config.kinds,
                "kind_weights": config.kind_weights,
                "pool_size": config.pool_size,
                "refresh_every": config.refresh_every,
                "batch_size": config.batch_size,
                "size": config.model.size,
            },
            next_task=state.next_task,
            stream=state.iteration,
        )
        pool = TaskPool([])
    else:
        pool = TaskPool([(i, _task(config, i)) for i in state.pool_ids])
    try:
        _loop(out, config, state, net, optimizer, pool, workers, on_progress)
    finally:
        if workers is not None:
            workers.close()
    return out


def _loop(
    out: Path,
    config: UniversalTrainConfig,
    state: _State,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    pool: TaskPool,
    workers: BatchWorkers | None,
    on_progress: Callable[[int, float], None] | None,
) -> None:
    """Train until the time or iteration budget is spent, checkpointing on the way."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng
    budget = 3600.0 * config.hours
    clock = time.perf_counter()
    base_seconds, last_save = state.seconds, state.seconds
    autocast = torch.autocast(
        device_type="cuda" if config.device.startswith("cuda") else "cpu",
        dtype=torch.bfloat16,
        enabled=config.bf16,
    )
    cap = config.iterations if config.iterations is not None else np.inf
    while state.seconds < budget and state.iteration < cap:
        batch = workers.get() if workers is not None else None
        if workers is not None:
            state.next_task = workers.next_task
        elif state.iteration % config.refresh_every == 0 and state.iteration:
            slot = state.next_task % config.pool_size
            pool.replace(slot, state.next_task, _task(config, state.next_task))
            state.next_task += 1
        with autocast:
            loss = train_step(
                net,
                optimizer,
                pool,
                rng,
                batch=batch,
                batch_size=config.batch_size,
                max_rounds=config.max_rounds,
                model_config=config.model,
                learning_rate=_cosine(config.learning_rate, state.seconds / budget),
                device=config.device,
            )
        state.iteration += 1
        state.losses.append(round(loss, 4))
        state.seconds = base_seconds + time.perf_counter() - clock
        if on_progress is not None:
            on_progress(state.iteration, min(state.seconds / budget, 1.0))
        if state.seconds - last_save >= 60 * config.checkpoint_minutes:
            _save(out, net, optimizer, config, state, pool, rng)
            last_save = state.seconds
    _save(out, net, optimizer, config, state, pool, rng)


def _start(
    out: Path, config: UniversalTrainConfig
) -> tuple[_State, torch.nn.Module, torch.optim.Optimizer, UniversalTrainConfig]:
    """A fresh run, or the saved one with the budgets and device of ``config``."""
    state_path = out / STATE_NAME
    if state_path.is_file():
        state = _State(**read_json(state_path))
        saved = from_jsonable(UniversalTrainConfig, state.config, source=str(state_path))
        config = replace(
            saved,
            hours=config.hours,
            iterations=config.iterations,
            checkpoint_minutes=config.checkpoint_minutes,
            device=config.device,
            workers=config.workers,
        )
        net, _ = load_model(out)
        net = net.to(config.device)
        optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
        optimizer.load_state_dict(_read_optimizer(out / OPTIMIZER_NAME, optimizer, config.device))
        logger.info("resuming %s at iteration %d", out, state.iteration)
        return state, net.train(), optimizer, config
    torch.manual_seed(config.seed)
    net = build_network(config.model).to(config.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2**31]))
    state = _State(
        next_task=config.pool_size,
        pool_ids=list(range(config.pool_size)),
        rng=rng.bit_generator.state,
        config=to_jsonable(config),
    )
    return state, net, optimizer, config


def _save(
    out: Path,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    config: UniversalTrainConfig,
    state: _State,
    pool: TaskPool,
    rng: np.random.Generator,
) -> None:
    """Checkpoint: model folder, optimizer moments and state, each written atomically."""
    tail = state.losses[-200:]
    info = {
        "data": "medseg.data.synthetic_tasks (procedural shapes, bundled scikit-image photos)",
        "iterations": state.iteration,
        "hours": round(state.seconds / 3600, 3),
        "tasks_seen": state.next_task,
        "final_loss": round(float(np.mean(tail)), 4) if tail else None,
        "settings": to_jsonable(config),
    }
    cpu_net = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    holder = build_network(config.model)
    holder.load_state_dict(cpu_net)
    save_model(holder, replace(config.model, training=info), out)
    tensors = _flatten_optimizer(optimizer)
    with atomic_path(out / OPTIMIZER_NAME) as tmp:
        save_file(tensors, str(tmp))
    # with workers the main pool is empty: a later run without them starts from the newest tasks
    state.pool_ids = list(pool.ids) or list(
        range(max(state.next_task - config.pool_size, 0), state.next_task)
    )
    state.rng = rng.bit_generator.state
    state.config = to_jsonable(config)
    write_json(state.__dict__, out / STATE_NAME)


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Adam's per-parameter moments and step counts as flat named tensors."""
    saved = optimizer.state_dict()
    return {
        f"{index}.{key}": torch.as_tensor(value).detach().cpu().contiguous()
        for index, values in saved["state"].items()
        for key, value in values.items()
    }


def _read_optimizer(path: Path, optimizer: torch.optim.Optimizer, device: str) -> dict[str, Any]:
    """Rebuild an Adam ``state_dict`` from the flat safetensors file (no pickle)."""
    tensors = load_file(str(path), device="cpu")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        value = tensor if key == "step" else tensor.to(device)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}
