"""Soft targets: training on the raters' mean label distribution instead of one label map.

With ``training.rater_soft_targets`` each training patch of a case with several raters' label
maps (``labelsTr/<case>_rater<k>``) is scored against the fraction of raters that gave each class
to each voxel (:func:`rater_soft_target`), cut from every rater's map at the image patch's
window; cases without raters use the one-hot of their label. A rater whose map has the ignore
label at a voxel does not vote there; a voxel no rater votes for carries the zero vector and
counts in no term (as the ignore label does).

:class:`SoftTargetLoss` is Dice + CE with probability targets: the cross-entropy
``sum_v sum_c w_c t_vc (-log p_vc) / sum_v sum_c w_c t_vc`` (``w`` the class weights) and the
soft Dice of MONAI's :class:`~monai.losses.DiceLoss` on the foreground channels, with the
probabilities of voxels without votes set to 0. With one-hot targets both equal the terms of
:class:`medseg.train.losses.SegmentationLoss`, which tests check; it also accepts a label map
(B, 1, *spatial), which it turns into one-hot targets (patch validation scores label maps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn

SMOOTH = 1e-5


def rater_soft_target(
    labels: Sequence[np.ndarray], num_classes: int, ignore_label: int | None = None
) -> np.ndarray:
    """Fraction of raters giving each class to each voxel.

    Parameters
    ----------
    labels : sequence of ndarray of int, each (1, *spatial)
        The raters' label maps, on the same grid.
    num_classes : int
        Network outputs, background included; label values are ``0 .. num_classes - 1``.
    ignore_label : int, optional
        A rater with this value at a voxel does not vote there.

    Returns
    -------
    ndarray of float32, shape (num_classes, *spatial)
        Sums to 1 over classes where at least one rater voted, 0 elsewhere.
    """
    votes = np.zeros((num_classes, *labels[0].shape[1:]), np.float32)
    voters = np.zeros(labels[0].shape[1:], np.float32)
    for label in labels:
        values = np.asarray(label[0])
        counted = values != ignore_label if ignore_label is not None else np.ones_like(values, bool)
        for c in range(num_classes):
            votes[c] += (values == c) & counted
        voters += counted
    return np.divide(votes, voters, out=np.zeros_like(votes), where=voters > 0)


def one_hot_target(
    label: torch.Tensor, num_classes: int, ignore_label: int | None = None
) -> torch.Tensor:
    """The label map (B, 1, *spatial) as float one-hot (B, C, *spatial); ignored voxels all 0."""
    label = label.long()
    valid = torch.ones_like(label, dtype=torch.bool)
    if ignore_label is not None:
        valid = label != ignore_label
    onehot = F.one_hot(label.masked_fill(~valid, 0)[:, 0], num_classes).movedim(-1, 1)
    return onehot.float() * valid


class SoftTargetLoss(nn.Module):
    """Soft Dice + cross-entropy against probability targets (softmax training).

    Parameters
    ----------
    ignore_label : int, optional
        Only for label-map targets: the value that counts in no term.
    class_weights : sequence of float, optional
        CE weight per output channel.
    batch_dice : bool
        Dice over the whole batch instead of per sample.
    """

    def __init__(
        self,
        *,
        ignore_label: int | None = None,
        class_weights: Sequence[float] | None = None,
        batch_dice: bool = False,
    ) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        self.regions: tuple[tuple[int, ...], ...] = ()
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float)
        self.register_buffer("class_weights", weight, persistent=False)
        self.dice = DiceLoss(
            include_background=False, smooth_nr=SMOOTH, smooth_dr=SMOOTH, batch=batch_dice
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits`` (B, C, *spatial) against ``target``.

        ``target`` is float (B, C, *spatial), each voxel a distribution over classes (or all 0:
        not counted), or a label map (B, 1, *spatial).
        """
        logits = logits.float()
        channels = logits.shape[1]
        if target.shape[1] == 1 and channels > 1:
            target = one_hot_target(target, channels, self.ignore_label)
        target = target.float()
        if target.shape != logits.shape:
            raise ValueError(
                f"soft target of shape {tuple(target.shape)} for logits {tuple(logits.shape)}"
            )
        weighted = target
        if self.class_weights is not None:
            weighted = target * self.class_weights.view(1, -1, *[1] * (logits.ndim - 2))
        mass = weighted.sum()
        if mass == 0:
            return logits.sum() * 0.0
        ce = -(weighted * torch.log_softmax(logits, dim=1)).sum() / mass
        counted = (target.sum(dim=1, keepdim=True) > 0).float()
        return self.dice(torch.softmax(logits, dim=1) * counted, target) + ce
