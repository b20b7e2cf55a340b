"""Fitting epochs to a CPU time budget from a timed training step."""

import dataclasses
import math

import pytest
import torch

from medseg.train.calibrate import VALIDATION_COST, calibrate_epochs, measure_iteration_seconds


def test_measured_step_time_is_positive_and_finite(plan):
    seconds = measure_iteration_seconds(plan, "3d", device=torch.device("cpu"), steps=2)
    assert math.isfinite(seconds)
    assert seconds > 0


def test_step_time_is_read_from_the_given_clock(plan):
    ticks = iter(range(100))

    def clock() -> float:  # advances 5 "seconds" per reading
        return 5.0 * next(ticks)

    seconds = measure_iteration_seconds(
        plan, "3d", device=torch.device("cpu"), steps=3, clock=clock
    )
    assert seconds == 5.0
    assert next(ticks) == 7  # one reading before the warm-up step, two per timed step


def test_measuring_leaves_the_global_rng_alone(plan):
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    measure_iteration_seconds(plan, "3d", device=torch.device("cpu"), steps=1)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("budget", "seconds", "iterations", "val", "expected"),
    [
        (1000.0, 0.5, 50, 30, math.floor(1000 / (0.5 * (50 + 30 * VALIDATION_COST)))),
        (1.0, 2.0, 50, 10, 1),  # never below one epoch
    ],
)
def test_epochs_fill_the_budget(tiny_plan, budget, seconds, iterations, val, expected):
    plan = tiny_plan()
    config = plan.configuration("3d")
    training = dataclasses.replace(
        config.training, iterations_per_epoch=iterations, val_iterations=val
    )
    plan = plan.with_configuration(dataclasses.replace(config, training=training))
    fitted = calibrate_epochs(plan, "3d", time_budget_s=budget, seconds_per_iteration=seconds)
    fitted_config = fitted.configuration("3d")
    assert fitted_config.training.epochs == expected
    assert "measured" in fitted_config.reasons[-1]
    assert fitted_config.training.iterations_per_epoch == iterations
