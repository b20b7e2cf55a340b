"""Learning-rate schedule over progress and the validation points of a time-budgeted run."""

from __future__ import annotations

from itertools import pairwise

import pytest

from medseg.train.schedule import BudgetClock, poly_lr, scheduled_lr, validation_points


def test_poly_matches_nnunet_formula() -> None:
    for epoch in range(0, 10):
        assert poly_lr(0.01, epoch / 10) == pytest.approx(0.01 * (1 - epoch / 10) ** 0.9)
    assert poly_lr(0.01, 1.5) == 0.0  # past the budget: clipped, never negative


def test_warmup_rises_linearly_then_decays_to_zero() -> None:
    lrs = [scheduled_lr(1.0, p / 100, warmup_fraction=0.1) for p in range(101)]
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[10] == pytest.approx(1.0)
    assert all(a < b for a, b in pairwise(lrs[:11]))
    assert all(a >= b for a, b in pairwise(lrs[10:]))
    assert lrs[-1] == 0.0
    # after the warm-up the decay is poly over the remaining 90 %
    assert lrs[55] == pytest.approx((1 - 0.5) ** 0.9)


def test_validation_points_in_second_half_ending_at_one() -> None:
    assert validation_points(0) == ()
    assert validation_points(2) == (0.5, 1.0)
    points = validation_points(5)
    assert points[0] == 0.5
    assert points[-1] == 1.0
    assert list(points) == sorted(points)


def test_clock_continues_after_resume() -> None:
    clock = BudgetClock(100.0, already_s=40.0)
    assert 0.4 <= clock.progress() < 0.5
    assert clock.elapsed() >= 40.0
