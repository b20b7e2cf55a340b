"""Segmentation losses: Dice + cross-entropy (softmax) or Dice + BCE (regions), deep supervision.

As in nnU-Net: soft Dice (smooth 1e-5, background excluded in softmax mode) plus cross-entropy at
1:1; with deep supervision, output ``i`` (resolution ``1/2**i``) gets weight ``1/2**i``, the
lowest output 0, normalised to sum 1, and is scored against the label map downsampled to its
size by nearest neighbour. Voxels with the ignore label count in neither term. Region-based
training (BraTS-style nested regions) uses one sigmoid per region with BCE + Dice.

The Dice term is MONAI's :class:`~monai.losses.DiceLoss`, applied to probabilities multiplied by
the valid-voxel mask so that ignored voxels count neither as prediction nor as reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from monai.networks.utils import one_hot
from torch import nn

from medseg.errors import ConfigError
from medseg.plan.plan import Configuration, Plan
from medseg.train.loss_terms import CombinedLoss, labels_to_regions, make_term
from medseg.train.weak_terms import WEAK_TERMS, AbsenceTerm

SMOOTH = 1e-5


def region_channels(regions: dict[str, Sequence[int]]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Output-channel order of region-based training: largest region first, then by name.

    For BraTS (``whole_tumor: [1, 2, 3]``, ``tumor_core: [2, 3]``, ``enhancing_tumor: [3]``) this
    is whole tumour, tumour core, enhancing tumour. The order depends only on the regions'
    content, so it survives a JSON round trip of the plan.
    """
    items = [(name, tuple(sorted(labels))) for name, labels in regions.items()]
    return tuple(sorted(items, key=lambda item: (-len(item[1]), item[0])))


def deep_supervision_weights(n_outputs: int) -> list[float]:
    """nnU-Net's deep-supervision weights: ``1/2**i``, the lowest output 0, normalised.

    >>> deep_supervision_weights(3)
    [0.6666666666666666, 0.3333333333333333, 0.0]
    """
    weights = [1 / 2**i for i in range(n_outputs)]
    if n_outputs > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


class SegmentationLoss(nn.Module):
    """Dice + CE on softmax outputs, or Dice + BCE on one sigmoid per region.

    Parameters
    ----------
    regions : sequence of sequences of int, optional
        Label values per region (output channel); empty for softmax training.
    ignore_label : int, optional
        Label value excluded from both terms.
    class_weights : sequence of float, optional
        CE weight per output channel (per region for BCE).
    batch_dice : bool
        Compute Dice over the whole batch instead of per sample.
    """

    def __init__(
        self,
        *,
        regions: Sequence[Sequence[int]] = (),
        ignore_label: int | None = None,
        class_weights: Sequence[float] | None = None,
        batch_dice: bool = False,
    ) -> None:
        super().__init__()
        self.regions = tuple(tuple(r) for r in regions)
        self.ignore_label = ignore_label
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float)
        self.register_buffer("class_weights", weight, persistent=False)
        self.dice = DiceLoss(
            include_background=bool(self.regions),
            smooth_nr=SMOOTH,
            smooth_dr=SMOOTH,
            batch=batch_dice,
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits`` (B, C, *spatial) against the label map ``target`` (B, 1, *spatial)."""
        logits = logits.float()
        target = target.long()
        valid = None
        if self.ignore_label is not None:
            ignored = target == self.ignore_label
            valid = (~ignored).float()
            target = target.masked_fill(ignored, 0)
        if self.regions:
            return self._region_loss(logits, target, valid)
        return self._softmax_loss(logits, target, valid)

    def _softmax_loss(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        probs = torch.softmax(logits, dim=1)
        onehot = one_hot(target, num_classes=logits.shape[1], dim=1)
        ce_target = target[:, 0]
        if valid is not None:
            probs, onehot = probs * valid, onehot * valid
            ce_target = ce_target.masked_fill(valid[:, 0] == 0, -100)
            if not valid.any():
                return logits.sum() * 0.0
        ce = F.cross_entropy(logits, ce_target, weight=self.class_weights, ignore_index=-100)
        return self.dice(probs, onehot) + ce

    def _region_loss(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        masks = labels_to_regions(target, self.regions)
        probs = torch.sigmoid(logits)
        weight = torch.ones_like(logits[:, :1]) if valid is None else valid
        if self.class_weights is not None:
            weight = weight * self.class_weights.view(1, -1, *([1] * (logits.ndim - 2)))
        weight = weight.expand_as(logits)
        denominator = (torch.ones_like(logits[:, :1]) if valid is None else valid).sum()
        if denominator == 0:
            return logits.sum() * 0.0
        bce = F.binary_cross_entropy_with_logits(logits, masks, weight=weight, reduction="sum")
        bce = bce / (denominator * logits.shape[1])
        if valid is not None:
            probs, masks = probs * valid, masks * valid
        return self.dice(probs, masks) + bce


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of ``loss`` over outputs at decreasing resolution.

    The label map is downsampled to each output's spatial size by nearest neighbour. Outputs
    with weight 0 are skipped.
    """

    def __init__(self, loss: nn.Module, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.weights = None if weights is None else list(weights)

    def forward(
        self, outputs: Sequence[torch.Tensor], target: torch.Tensor, *extra: torch.Tensor
    ) -> torch.Tensor:
        """``outputs``: list of (B, C, *spatial_i) logits; ``target``: (B, 1, *spatial) labels.

        ``extra`` (e.g. the annotated-class mask of :class:`~medseg.train.marginal.MarginalLoss`)
        is passed on to ``loss``.
        """
        weights = self.weights or deep_supervision_weights(len(outputs))
        total = outputs[0].new_zeros((), dtype=torch.float)
        for output, weight in zip(outputs, weights, strict=False):
            if weight == 0:
                continue
            scaled = target
            if output.shape[2:] != target.shape[2:]:
                scaled = F.interpolate(target.float(), size=output.shape[2:], mode="nearest")
            total = total + weight * self.loss(output, scaled, *extra)
        return total


def make_loss_term(
    name: str, *, every_object_marked: Mapping[int, float] | None = None, **options: Any
) -> nn.Module:
    """A term of :mod:`medseg.train.loss_terms` (``make_term``, with its options) or of
    :mod:`medseg.train.weak_terms` (``entropy``, ``box_prior``, ``absence``: regions, ignore
    label, and for ``absence`` ``every_object_marked`` and ``spacing``).

    Raises
    ------
    ConfigError
        If ``name`` is unknown or the term does not fit the training mode.
    """
    regions, ignore = options.get("regions", ()), options.get("ignore_label")
    if name == "absence":
        return AbsenceTerm(
            marked=every_object_marked or {},
            spacing=options["spacing"],
            ignore_label=ignore,
            regions=regions,
            patch_size=options.get("patch_size"),
        )
    if name in WEAK_TERMS:
        return WEAK_TERMS[name](regions=regions, ignore_label=ignore)
    return make_term(name, **options)


def build_loss(
    plan: Plan, config: Configuration, *, partial: bool = False, soft: bool = False
) -> DeepSupervisionLoss:
    """The training loss for ``config`` of ``plan`` (regions, ignore label, class weights).

    ``training.loss`` is the main loss: ``dice_ce`` / ``dice_bce`` (Dice + CE, or Dice + BCE when
    the plan has regions) or a term of :mod:`medseg.train.loss_terms`; ``training.extra_losses``
    adds terms with their weights. Dice over the batch when ``training.batch_dice`` says so
    (default: only for ``2d``). ``partial``: batches carry an annotated-class mask (partially
    labelled or unlabelled cases), so the loss is :class:`~medseg.train.marginal.MarginalLoss`.
    ``soft``: targets are the raters' vote fractions (``training.rater_soft_targets``), so the
    loss is :class:`~medseg.train.soft_targets.SoftTargetLoss`.

    Raises
    ------
    ConfigError
        ``partial`` and ``soft`` together (soft targets carry no annotated-class mask).
    """
    training = config.training
    batch_dice = len(config.patch_size) == 2 if training.batch_dice is None else training.batch_dice
    if soft:
        if partial:
            raise ConfigError(
                "soft rater targets do not combine with partially labelled or unlabelled "
                "cases; turn off training.rater_soft_targets"
            )
        from medseg.train.soft_targets import SoftTargetLoss

        return DeepSupervisionLoss(
            SoftTargetLoss(
                ignore_label=plan.ignore_label,
                class_weights=training.class_weights,
                batch_dice=batch_dice,
            )
        )
    if partial:
        from medseg.train.marginal import partial_loss

        return DeepSupervisionLoss(partial_loss(plan, config, batch_dice=batch_dice))
    regions = [labels for _, labels in region_channels(plan.regions)]
    options = {
        "regions": regions,
        "ignore_label": plan.ignore_label,
        "class_weights": training.class_weights,
        "batch_dice": batch_dice,
    }
    geometry = {"spacing": config.spacing, "patch_size": config.patch_size}
    if training.loss in ("dice_ce", "dice_bce"):
        main: nn.Module = SegmentationLoss(**options)
    else:
        main = make_loss_term(training.loss, **options, **geometry)
    if not training.extra_losses:
        return DeepSupervisionLoss(main)
    marked = {"every_object_marked": plan.every_object_marked}
    terms = [(training.loss, 1.0, main)] + [
        (name, weight, make_loss_term(name, **options, **geometry, **marked))
        for name, weight in sorted(training.extra_losses.items())
    ]
    return DeepSupervisionLoss(CombinedLoss(terms, regions=regions, ignore_label=plan.ignore_label))
