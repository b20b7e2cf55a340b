"""Learning-rate schedules over training progress, and when a time-budgeted run validates.

Progress is a fraction in [0, 1]: ``epoch / epochs`` for an epoch-counted run (nnU-Net's poly
decay, set at the start of each epoch), ``elapsed / time_budget_s`` for a time-budgeted one (set
before every iteration, so the decay ends with the budget whatever the machine's speed).
"""

from __future__ import annotations

import time

POLY_EXPONENT = 0.9
WARMUP_START = 0.01
"""Fraction of the initial learning rate at the first warm-up iteration."""


def poly_lr(initial: float, progress: float, exponent: float = POLY_EXPONENT) -> float:
    """nnU-Net's polynomial decay ``initial * (1 - progress) ** exponent`` (progress clipped).

    >>> poly_lr(0.01, 0.0), poly_lr(0.01, 1.0)
    (0.01, 0.0)
    """
    progress = min(max(progress, 0.0), 1.0)
    return initial * (1 - progress) ** exponent


def scheduled_lr(initial: float, progress: float, *, warmup_fraction: float = 0.0) -> float:
    """Linear warm-up over the first ``warmup_fraction`` of progress, then poly decay.

    The warm-up rises from ``WARMUP_START * initial`` to ``initial``; the decay runs over the rest
    of the progress range, reaching 0 at progress 1.

    >>> scheduled_lr(1.0, 0.05, warmup_fraction=0.1)
    0.505
    >>> scheduled_lr(1.0, 0.1, warmup_fraction=0.1)
    1.0
    """
    if warmup_fraction > 0 and progress < warmup_fraction:
        ramp = progress / warmup_fraction
        return initial * (WARMUP_START + (1 - WARMUP_START) * ramp)
    rest = (progress - warmup_fraction) / (1 - warmup_fraction)
    return poly_lr(initial, rest)


def validation_points(count: int) -> tuple[float, ...]:
    """Progress fractions at which a time-budgeted run validates whole cases.

    Spread evenly over the second half of the run, the last at its end (1.0): early weights
    are never the best on a short budget, and each validation costs training time.

    >>> validation_points(3)
    (0.5, 0.75, 1.0)
    >>> validation_points(1)
    (1.0,)
    """
    if count <= 0:
        return ()
    if count == 1:
        return (1.0,)
    return tuple(0.5 + 0.5 * i / (count - 1) for i in range(count))


class BudgetClock:
    """Wall-clock seconds spent on a run, continued across a resume.

    Parameters
    ----------
    budget_s : float
        The run's time budget in seconds.
    already_s : float
        Seconds spent before this process started (from a checkpoint).
    """

    def __init__(self, budget_s: float, already_s: float = 0.0) -> None:
        self.budget_s = float(budget_s)
        self._start = time.perf_counter() - already_s

    def elapsed(self) -> float:
        """Seconds spent so far."""
        return time.perf_counter() - self._start

    def progress(self) -> float:
        """Elapsed seconds over the budget (can exceed 1)."""
        return self.elapsed() / self.budget_s


def run_progress(
    started: float | None,
    time_budget_s: float | None,
    steps: int,
    total_steps: int,
    *,
    empty: float,
) -> float:
    """Fraction of a training run done: by wall clock with a time budget, else by steps.

    ``started`` is the ``time.perf_counter()`` of the first step (``None``: not started, 0.0);
    ``empty`` is returned for a step-counted run of zero steps.
    """
    if time_budget_s:
        if started is None:
            return 0.0
        return (time.perf_counter() - started) / time_budget_s
    return steps / total_steps if total_steps else empty
