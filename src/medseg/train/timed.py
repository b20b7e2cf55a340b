"""Time-budgeted training: iterate until the budget is spent, validate rarely, keep the best.

Used by :func:`medseg.train.trainer.train_fold` when ``training.time_budget_s`` is set (CPU
plans). The learning rate is set before every iteration from elapsed / budget
(:func:`medseg.train.schedule.scheduled_lr`), so warm-up and decay end with the budget whatever
the machine's speed or load. Validation is whole cases predicted with the sliding window
(:func:`medseg.train.validation.validate_cases`) at the progress points of
:func:`~medseg.train.schedule.validation_points`; the run stops when the time left is less than
the last validation took plus half an iteration (running mean), then validates a final time, so
the fold ends within a few percent of its budget even when one iteration takes 20 s (a loaded
CPU). An intermediate validation is skipped when, at the cost of the last one, validation
would take more than ``VALIDATION_SHARE`` of the budget (a slow or loaded CPU: at a load of 17
on 2 cores one validation of 4 brains took 45 s, 7.5 % of 600 s). The weights of the
validation with the best mean Dice (foreground classes and regions, NaN ignored) are the fold's
model. With ``training.weight_ema`` > 0 validation sees, and the fold keeps, an exponential moving
average of the weights (``torch.optim.swa_utils.AveragedModel``, updated after every
iteration) instead; a resumed run restarts the average from the resumed weights.

Logging and checkpoints cost almost nothing: a log row (and a checkpoint for resuming) every
``iterations_per_epoch`` iterations, the progress plot only after validations. A resumed run
continues the clock where its checkpoint left it; unlike an epoch-counted run it is not
bit-for-bit reproducible, since how many iterations fit depends on the machine's speed.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from medseg.plan.plan import Plan
from medseg.train.checkpoint import save_checkpoint
from medseg.train.finetune import set_learning_rate
from medseg.train.logs import plot_progress, write_log_csv
from medseg.train.model_folder import save_weights
from medseg.train.sampling import CaseSource
from medseg.train.schedule import BudgetClock, scheduled_lr, validation_points
from medseg.train.validation import class_names, mean_over_cases, validate_cases

logger = logging.getLogger(__name__)

BEST_WEIGHTS = "best.safetensors"
VALIDATION_SHARE = 0.1
"""Largest fraction of the budget intermediate validations may take; the final one always runs."""


@dataclass(kw_only=True)
class TimedState:
    """What a time-budgeted run carries across a checkpoint (JSON-serialisable fields)."""

    elapsed_s: float = 0.0
    iterations: int = 0
    rounds: int = 0
    validations: int = 0
    validation_s: float = 0.0
    best_score: float = -math.inf
    best_at_s: float = math.nan
    best_metrics: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    best_predictions: dict[str, np.ndarray] = field(default_factory=dict)
    """Label maps of the best validation; not checkpointed, so after a resume it stays empty
    unless a later validation becomes the best."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "elapsed_s": self.elapsed_s,
            "iterations": self.iterations,
            "rounds": self.rounds,
            "validations": self.validations,
            "validation_s": self.validation_s,
            "best_score": self.best_score if math.isfinite(self.best_score) else None,
            "best_at_s": self.best_at_s if math.isfinite(self.best_at_s) else None,
            "best_metrics": self.best_metrics,
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimedState:
        best = data.get("best_score")
        at = data.get("best_at_s")
        return cls(
            elapsed_s=float(data.get("elapsed_s", 0.0)),
            iterations=int(data.get("iterations", 0)),
            rounds=int(data.get("rounds", 0)),
            validations=int(data.get("validations", 0)),
            validation_s=float(data.get("validation_s", 0.0)),
            best_score=-math.inf if best is None else float(best),
            best_at_s=math.nan if at is None else float(at),
            best_metrics=dict(data.get("best_metrics", {})),
            rows=list(data.get("rows", [])),
        )


@dataclass(kw_only=True)
class TimedRun:
    """Everything the loop needs; built by ``train_fold``."""

    net: nn.Module
    optimizer: torch.optim.Optimizer
    step: Callable[..., float]
    batches: Iterator[tuple[torch.Tensor, ...]]
    plan: Plan
    config_name: str
    source: CaseSource
    val_ids: Sequence[str]
    device: torch.device
    dtype: torch.dtype | None
    path: Path
    checkpoint_state: dict[str, Any]
    title: str
    annotated: Mapping[str, Sequence[int]] | None = None


def train_for_time(
    run: TimedRun,
    state: TimedState,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TimedState:
    """Train ``run.net`` until its budget is spent; leave the best validated weights in it.

    Returns
    -------
    TimedState
        Iterations, validations, the best score, when it was reached and its metrics
        (``{"dice": ..., "per_case": ...}``; empty when no validation could run).
    """
    tc = run.plan.configuration(run.config_name).training
    budget = float(tc.time_budget_s or 0.0)
    clock = BudgetClock(budget, state.elapsed_s)
    points = validation_points(tc.case_validations)
    names = [name for _, name in class_names(run.plan)]
    val_ids = _spread(run.val_ids, tc.max_val_cases)
    if state.best_score > -math.inf and (run.path / BEST_WEIGHTS).is_file():
        best_weights: dict[str, torch.Tensor] | None = load_file(str(run.path / BEST_WEIGHTS))
    else:
        best_weights = None
    average = weight_average(run.net, tc.weight_ema)
    validated = run.net if average is None else average.module
    losses: list[float] = []
    round_start = clock.elapsed()
    step_s = 0.0  # running mean of an iteration's wall time
    while True:
        last_cost = state.validation_s / max(state.validations, 1)
        # stop where ending now is closer to the budget than ending after one more iteration
        started = clock.elapsed()
        if started + last_cost + step_s / 2 >= budget:
            break
        lr = scheduled_lr(tc.learning_rate, clock.progress(), warmup_fraction=tc.warmup_fraction)
        set_learning_rate(run.optimizer, lr)
        run.net.train()
        losses.append(run.step(*next(run.batches)))
        if average is not None:
            average.update_parameters(run.net)
        state.iterations += 1
        took = clock.elapsed() - started
        step_s = took if step_s == 0.0 else 0.9 * step_s + 0.1 * took
        if on_progress is not None:
            spent = max(clock.elapsed(), 1e-9)
            expected = state.iterations * (budget - last_cost * _left(points, state)) / spent
            on_progress(state.iterations, max(state.iterations, round(expected)))
        due = (
            state.validations < len(points) - 1
            and clock.progress() >= points[state.validations]
            and state.validation_s + last_cost <= VALIDATION_SHARE * budget
        )
        if state.iterations % tc.iterations_per_epoch and not due:
            continue
        dice: dict[str, float] = {}
        if due:
            dice, best_weights = _validate(run, validated, state, val_ids, clock, best_weights)
        _log_round(run, state, names, losses, dice, lr, clock, round_start, on_epoch)
        losses, round_start = [], clock.elapsed()
    if points:
        dice, best_weights = _validate(run, validated, state, val_ids, clock, best_weights)
        if losses or dice:
            _log_round(run, state, names, losses, dice, lr_now(run), clock, round_start, on_epoch)
    if best_weights is not None:
        run.net.load_state_dict(best_weights)
    state.elapsed_s = clock.elapsed()
    logger.info(
        "trained %d iterations in %.0f s of a %.0f s budget; best validation %.3f at %.0f s",
        state.iterations,
        state.elapsed_s,
        budget,
        state.best_score,
        state.best_at_s,
    )
    (run.path / BEST_WEIGHTS).unlink(missing_ok=True)
    return state


def weight_average(net: nn.Module, decay: float) -> AveragedModel | None:
    """An EMA copy of ``net`` (weights and buffers, ``decay`` per update), or ``None`` at 0.

    Polyak averaging: the average of the last ~1 / (1 - decay) iterates lies nearer the minimum
    than any one of them while the step size is large. The CPU schedule decays the learning
    rate to 0 by the end of the budget, which does much the same (docs/train.md: no gain).
    """
    if decay <= 0:
        return None
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def lr_now(run: TimedRun) -> float:
    return float(run.optimizer.param_groups[0]["lr"])


def _left(points: tuple[float, ...], state: TimedState) -> int:
    return max(len(points) - state.validations, 0)


def _spread(ids: Sequence[str], count: int) -> list[str]:
    """At most ``count`` of ``ids``, evenly spread over the sorted list."""
    ordered = sorted(ids)
    if len(ordered) <= count:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, count).round().astype(int)
    return [ordered[i] for i in picks]


def _validate(
    run: TimedRun,
    net: nn.Module,
    state: TimedState,
    val_ids: list[str],
    clock: BudgetClock,
    best: dict[str, torch.Tensor] | None,
) -> tuple[dict[str, float], dict[str, torch.Tensor] | None]:
    tic = clock.elapsed()
    predictions: dict[str, np.ndarray] = {}
    per_case = validate_cases(
        net,
        run.source,
        val_ids,
        run.plan,
        run.config_name,
        device=run.device,
        dtype=run.dtype,
        annotated=run.annotated,
        predictions=predictions,
    )
    dice = mean_over_cases(per_case)
    finite = [v for v in dice.values() if not math.isnan(v)]
    score = float(np.mean(finite)) if finite else -math.inf
    state.validations += 1
    state.validation_s += clock.elapsed() - tic
    if score > state.best_score or best is None:
        state.best_score, state.best_at_s = score, tic
        state.best_metrics = {"dice": dice, "per_case": per_case, "val_cases": val_ids}
        state.best_predictions = predictions
        best = copy.deepcopy({k: v.detach().cpu() for k, v in net.state_dict().items()})
        save_weights(best, run.path / BEST_WEIGHTS)
    logger.info("validation %d at %.0f s: mean Dice %.3f", state.validations, tic, score)
    return dice, best


def _log_round(
    run: TimedRun,
    state: TimedState,
    names: list[str],
    losses: list[float],
    dice: dict[str, float],
    lr: float,
    clock: BudgetClock,
    round_start: float,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> None:
    state.rounds += 1
    finite = [v for v in losses if math.isfinite(v)]
    elapsed = clock.elapsed()
    scores = {f"dice_{name}": dice.get(name, math.nan) for name in names}
    valid = [v for v in scores.values() if not math.isnan(v)]
    row = {
        "epoch": state.rounds,
        "iterations": state.iterations,
        "elapsed_s": round(elapsed, 2),
        "train_loss": float(np.mean(finite)) if finite else math.nan,
        "val_loss": math.nan,
        "lr": lr,
        "epoch_s": round(elapsed - round_start, 3),
        **scores,
        "mean_dice": float(np.mean(valid)) if valid else math.nan,
    }
    state.rows.append(row)
    state.elapsed_s = elapsed
    write_log_csv(state.rows, run.path / "log.csv")
    if dice:
        plot_progress(
            state.rows, run.path / "progress.png", title=run.title, validated="whole cases"
        )
    save_checkpoint(
        run.path,
        run.net,
        run.optimizer,
        {**run.checkpoint_state, "epoch": state.rounds, **state.as_dict()},
    )
    if on_epoch is not None:
        on_epoch(row)
