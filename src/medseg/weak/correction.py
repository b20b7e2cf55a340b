"""Noisy-label correction during training: early-learning relabelling (ADELE-style, simplified).

Networks fit the clean part of noisy labels first and memorise the noise later (Liu et al.,
"Adaptive Early-Learning Correction for Segmentation from Noisy Annotations", CVPR 2022). After
the early phase, :class:`LabelCorrection` relabels every training voxel where the network is
confident (top softmax probability >= ``threshold``) and disagrees with the label, with the
network's class, before the loss sees it. ADELE detects the end of the early phase per class
from the slope of the training IoU curve and adds multi-scale consistency; here the phase ends
at a fixed fraction of training (of the time budget for time-budgeted plans, of
``epochs x iterations_per_epoch`` otherwise), which needs no per-class bookkeeping. Ignored
voxels stay ignored. Softmax training only.

Off by default; :func:`train_with_label_correction` trains a dataset with it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medseg.errors import ConfigError
from medseg.plan.plan import Configuration
from medseg.train.losses import DeepSupervisionLoss
from medseg.train.schedule import run_progress
from medseg.train.soft_targets import SoftTargetLoss


class LabelCorrection(nn.Module):
    """Wrap a deep-supervision loss; correct confident disagreements after the early phase.

    Parameters
    ----------
    inner : DeepSupervisionLoss
        The training loss (softmax mode).
    start_fraction : float
        Fraction of training after which labels are corrected, in [0, 1].
    threshold : float
        Softmax probability above which the network's class replaces the label.
    total_steps : int, optional
        Training iterations of the run (epoch-based plans).
    time_budget_s : float, optional
        Training seconds of the run (time-budgeted plans; the clock starts at the first step).
    """

    def __init__(
        self,
        inner: DeepSupervisionLoss,
        *,
        start_fraction: float = 0.5,
        threshold: float = 0.9,
        total_steps: int | None = None,
        time_budget_s: float | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= start_fraction <= 1 or not 0.5 <= threshold <= 1:
            raise ConfigError(
                f"label correction needs start_fraction in [0, 1] and threshold in [0.5, 1], "
                f"got {start_fraction}, {threshold}"
            )
        if getattr(inner.loss, "regions", ()):
            raise ConfigError("label correction supports softmax training only, not regions")
        if isinstance(inner.loss, SoftTargetLoss):
            raise ConfigError(
                "label correction relabels label maps; it does not combine with soft rater "
                "targets (training.rater_soft_targets)"
            )
        self.inner = inner
        self.loss = inner.loss
        self.start_fraction = start_fraction
        self.threshold = threshold
        self.total_steps = total_steps
        self.time_budget_s = time_budget_s
        self.steps = 0
        self.corrected_voxels = 0
        self._started: float | None = None

    def progress(self) -> float:
        """Fraction of training done: by wall clock with a time budget, else by steps."""
        return run_progress(
            self._started, self.time_budget_s, self.steps, self.total_steps, empty=0.0
        )

    def forward(
        self, outputs: Sequence[torch.Tensor], target: torch.Tensor, *extra: torch.Tensor
    ) -> torch.Tensor:
        """Loss of ``outputs`` (deep-supervision list, full resolution first) on ``target``.

        ``extra`` (the batch's annotated-class mask, if any) is passed on to the inner loss.
        """
        if torch.is_grad_enabled():
            if self._started is None:
                self._started = time.perf_counter()
            if self.progress() >= self.start_fraction:
                target = self.correct(outputs[0].detach(), target)
            self.steps += 1
        return self.inner(outputs, target, *extra)

    def correct(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``target`` with confident disagreements replaced by the network's class.

        Parameters
        ----------
        logits : Tensor, shape (B, C, *spatial)
        target : Tensor of int, shape (B, 1, *spatial)
        """
        probs = torch.softmax(logits.float(), dim=1)
        confidence, predicted = probs.max(dim=1, keepdim=True)
        flip = (confidence >= self.threshold) & (predicted != target.long())
        ignore = self.loss.ignore_label
        if ignore is not None:
            flip &= target != ignore
        self.corrected_voxels += int(flip.sum())
        return torch.where(flip, predicted.to(target.dtype), target)


def correction_wrapper(*, start_fraction: float = 0.5, threshold: float = 0.9):
    """A ``wrap_loss`` hook for :func:`medseg.train.train_model` adding label correction."""

    def wrap(loss: DeepSupervisionLoss, config: Configuration) -> LabelCorrection:
        tc = config.training
        return LabelCorrection(
            loss,
            start_fraction=start_fraction,
            threshold=threshold,
            total_steps=tc.epochs * tc.iterations_per_epoch,
            time_budget_s=tc.time_budget_s,
        )

    return wrap


def train_with_label_correction(
    dataset: Any,
    out_dir: str | Path,
    *,
    start_fraction: float = 0.5,
    threshold: float = 0.9,
    **train_options: Any,
):
    """:func:`medseg.train.train_model` with early-learning label correction.

    ``train_options`` are passed on (``folds``, ``device``, ``budget``, ``overrides``...).
    """
    from medseg.train import train_model

    wrap = correction_wrapper(start_fraction=start_fraction, threshold=threshold)
    return train_model(dataset, out_dir, wrap_loss=wrap, **train_options)
