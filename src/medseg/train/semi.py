"""Semi-supervised training from unlabelled images: mean teacher.

The choice is the mean teacher of Tarvainen & Valpola ("Mean teachers are better role models",
NeurIPS 2017), with the settings of the mean-teacher baseline of Yu et al. ("Uncertainty-aware
self-ensembling model for semi-supervised 3D left atrium segmentation", MICCAI 2019), a common
reference in medical segmentation: a teacher network whose weights are an exponential moving
average (EMA, decay ``training.teacher_ema``, 0.99) of the student's, and a consistency term, the
mean squared difference of the two networks' softmax outputs, that asks the student to agree
with the teacher on every sample of the batch, labelled or not. The teacher sees the same patch
with Gaussian noise (sigma 0.1, clipped at 0.2 in normalised intensity units). The term's weight
``training.consistency_weight`` (0.1) ramps up as ``exp(-5 (1 - t)^2)`` over the first
``RAMPUP`` of training (Laine & Aila's sigmoid ramp-up), so the teacher is not copied while it
knows nothing. Following Tarvainen & Valpola, the EMA decay is ``min(1 - 1 / (step + 1), ema)``,
so the teacher follows the student closely during the first steps.

The other option of the literature, confidence-thresholded pseudo-labels (FixMatch-style), needs
a strong and a weak augmentation of each patch; the mean teacher needs only the network and the
noise, and its teacher is a useful model of its own. Each training batch holds ``batch_size``
labelled patches followed by ``batch_size`` unlabelled ones (see
:class:`~medseg.train.sampling.PatchSampler`); the unlabelled patches add nothing to the
supervised loss (:mod:`medseg.train.marginal`), only to the consistency term. The saved model is
the student. The teacher is not checkpointed: a resumed run restarts it from the student.
"""

from __future__ import annotations

import copy
import math
import time

import torch
from torch import nn

from medseg.errors import ConfigError
from medseg.train.networks import output_list
from medseg.train.schedule import run_progress

RAMPUP = 0.25
"""Fraction of training over which the consistency weight ramps up to its full value."""
NOISE_SIGMA = 0.1
NOISE_CLIP = 0.2


def rampup_weight(progress: float, rampup: float = RAMPUP) -> float:
    """``exp(-5 (1 - t)^2)`` with ``t = min(progress / rampup, 1)``: 0.0067 at 0, 1 from ``rampup``.

    >>> rampup_weight(0.5)
    1.0
    """
    if rampup <= 0:
        return 1.0
    t = min(max(progress / rampup, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


class MeanTeacher:
    """The teacher of a student network and the consistency term between them.

    Parameters
    ----------
    student : nn.Module
        The network being trained (not a data-parallel wrapper).
    weight : float
        Full weight of the consistency term.
    ema : float
        EMA decay of the teacher's weights, in [0, 1).
    total_steps : int, optional
        Training iterations of the run (epoch-based plans), for the ramp-up.
    time_budget_s : float, optional
        Training seconds of the run (time-budgeted plans; the clock starts at the first step).
    noise : float
        Standard deviation of the Gaussian noise added to the teacher's input (0: none).
    """

    def __init__(
        self,
        student: nn.Module,
        *,
        weight: float = 0.1,
        ema: float = 0.99,
        total_steps: int | None = None,
        time_budget_s: float | None = None,
        noise: float = NOISE_SIGMA,
    ) -> None:
        if weight < 0 or not 0 <= ema < 1:
            raise ConfigError(
                f"mean teacher needs training.consistency_weight >= 0 and training.teacher_ema "
                f"in [0, 1), got {weight} and {ema}"
            )
        self.student = student
        self.teacher = copy.deepcopy(student).eval()
        self.teacher.requires_grad_(False)
        self.weight, self.ema, self.noise = weight, ema, noise
        self.total_steps, self.time_budget_s = total_steps, time_budget_s
        self.steps = 0
        self._started: float | None = None

    def progress(self) -> float:
        """Fraction of training done: by wall clock with a time budget, else by steps."""
        return run_progress(
            self._started, self.time_budget_s, self.steps, self.total_steps, empty=1.0
        )

    def current_weight(self) -> float:
        """The consistency weight at this point of training (after the ramp-up: ``weight``)."""
        return self.weight * rampup_weight(self.progress())

    def consistency(self, student_logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Weighted mean squared difference of student and teacher softmax outputs.

        Parameters
        ----------
        student_logits : Tensor, shape (B, C, *spatial)
            The student's full-resolution output for ``image``.
        image : Tensor, shape (B, channels, *spatial)
            The batch the student saw (labelled and unlabelled patches).

        Returns
        -------
        Tensor, scalar
        """
        if self._started is None:
            self._started = time.perf_counter()
        with torch.no_grad():
            noisy = image
            if self.noise > 0:
                jitter = torch.randn_like(image) * self.noise
                noisy = image + jitter.clamp(-2 * self.noise, 2 * self.noise)
            teacher_logits = output_list(self.teacher(noisy), image.ndim - 2)[0]
            target = torch.softmax(teacher_logits.float(), dim=1)
        student = torch.softmax(student_logits.float(), dim=1)
        return self.current_weight() * torch.mean((student - target) ** 2)

    @torch.no_grad()
    def update(self) -> None:
        """Move the teacher's weights towards the student's (call after each optimiser step)."""
        decay = min(1.0 - 1.0 / (self.steps + 1), self.ema)
        for mine, theirs in zip(self.teacher.parameters(), self.student.parameters(), strict=True):
            mine.mul_(decay).add_(theirs.detach(), alpha=1.0 - decay)
        for mine, theirs in zip(self.teacher.buffers(), self.student.buffers(), strict=True):
            mine.copy_(theirs)
        self.steps += 1
