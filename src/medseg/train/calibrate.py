"""Fit the number of epochs to a CPU time budget by timing real training steps on this machine.

The planner (:mod:`medseg.plan.budget`) sizes patch and network from a *reference* iteration time
(docs/plan.md, "Why a CPU plan is small"), but a CPU's real speed varies several-fold with its
vector units, its load and its thread count. For an epoch-counted CPU run (a plan without
``training.time_budget_s``), :func:`calibrate_epochs` times a few optimisation steps of the planned
network at the planned patch and batch size, and sets ``training.epochs`` so that one fold fits
``time_budget_s``. Time-budgeted plans (the CPU default) need no calibration: they stop on the
clock.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable

import torch

from medseg.plan.plan import Plan
from medseg.train.networks import build_network
from medseg.train.trainer import _checked_loss, _memory_format, _Stepper, autocast_dtype

logger = logging.getLogger(__name__)

VALIDATION_COST = 1 / 3
"""A validation iteration (forward only) costs about a third of a training iteration."""


def measure_iteration_seconds(
    plan: Plan,
    config_name: str,
    *,
    device: torch.device,
    steps: int = 3,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median seconds of one training step (forward, loss, backward, SGD) on random patches.

    One warm-up step is run first and not counted. Inputs are random normal images of shape
    ``(batch, C, *patch)`` and random label maps drawn from the plan's label values. ``clock``
    is wall time by default; ``time.process_time`` gives this process's CPU seconds (threads
    summed), which other processes on a shared machine change little when torch runs one thread
    (several threads spin while they wait for each other, and spinning counts).
    """
    config = plan.configuration(config_name)
    tc = config.training
    ndim = len(config.patch_size)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_network(
            config.network,
            plan.input_channels(config_name),
            plan.num_classes,
            ndim,
            patch_size=config.patch_size,
        )
    dtype = autocast_dtype(tc.mixed_precision, device)
    memory_format = _memory_format(ndim) if dtype is not None and device.type == "cpu" else None
    net = net.to(device) if memory_format is None else net.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(net.parameters(), lr=tc.learning_rate, momentum=tc.momentum)
    stepper = _Stepper(
        net,
        optimizer,
        _checked_loss(plan, config).to(device),
        device,
        dtype,
        memory_format,
        tc.grad_clip,
        ndim,
    )
    values = torch.tensor(sorted(set(plan.labels.values())), dtype=torch.int64)
    shape = (config.batch_size, plan.input_channels(config_name), *config.patch_size)
    times = []
    for step in range(steps + 1):
        image = torch.randn(shape, generator=generator)
        index = torch.randint(
            len(values), (config.batch_size, 1, *config.patch_size), generator=generator
        )
        start = clock()
        stepper(image, values[index])
        if step > 0:
            times.append(clock() - start)
    return float(sorted(times)[len(times) // 2])


def calibrate_epochs(
    plan: Plan, config_name: str, *, time_budget_s: float, seconds_per_iteration: float
) -> Plan:
    """A copy of ``plan`` whose epochs fill ``time_budget_s`` at the measured step time.

    Epoch time is estimated as ``iterations_per_epoch + VALIDATION_COST * val_iterations``
    steps. At least one epoch is kept; the reason is recorded in the configuration.
    """
    config = plan.configuration(config_name)
    tc = config.training
    steps_per_epoch = tc.iterations_per_epoch + VALIDATION_COST * tc.val_iterations
    epochs = max(1, math.floor(time_budget_s / (seconds_per_iteration * steps_per_epoch)))
    reason = (
        f"epochs {epochs} (plan: {tc.epochs}): one training step measured at "
        f"{seconds_per_iteration:.2f} s on this machine, {tc.iterations_per_epoch} iterations "
        f"per epoch, time budget {time_budget_s:.0f} s"
    )
    logger.info(reason)
    config = dataclasses.replace(
        config,
        training=dataclasses.replace(tc, epochs=epochs),
        reasons=(*config.reasons, reason),
    )
    return plan.with_configuration(config)
