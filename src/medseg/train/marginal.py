"""The marginal (partial-label) loss: cases that annotate only some classes, and unlabelled ones.

In a partially labelled case (see :mod:`medseg.data.partial`) a voxel labelled background means
"background or one of the classes this case did not annotate". :class:`MarginalLoss` trains on
that without calling the missing classes background (marginal loss, Shi et al., "Marginal loss
and exclusion loss for partially supervised multi-organ segmentation", MedIA 2021): the softmax
probabilities of background and of the unannotated classes are summed before the cross-entropy
of background voxels, and the Dice term covers only the annotated foreground classes of each
sample. When every class is annotated it equals :class:`medseg.train.losses.SegmentationLoss`
(Dice + CE), which a test checks. A sample that annotates nothing, not even background (an
unlabelled image in semi-supervised training, :mod:`medseg.train.semi`), adds nothing.

The trainer uses it when a batch carries an annotated-class mask, shape (B, C): the sampler
(:class:`medseg.train.sampling.PatchSampler`) adds one when the dataset declares partial
annotations or training uses unlabelled images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from medseg.errors import ConfigError
from medseg.plan.plan import Configuration, Plan
from medseg.train.sampling import annotated_rows
from medseg.train.weak_terms import EntropyTerm

SMOOTH = 1e-5


class MarginalLoss(nn.Module):
    """Dice + CE for softmax outputs when each sample annotates only some classes.

    Parameters
    ----------
    ignore_label : int, optional
        Label value excluded from both terms.
    batch_dice : bool
        Dice over the whole batch (per class, over the samples annotating it).
    class_weights : sequence of float, optional
        CE weight per output channel, as ``torch.nn.functional.cross_entropy``'s ``weight``
        (weighted mean); a voxel labelled 0 in a partially labelled sample weighs as background.
    """

    def __init__(
        self,
        *,
        ignore_label: int | None = None,
        batch_dice: bool = False,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        self.batch_dice = batch_dice
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float)
        self.register_buffer("class_weights", weight, persistent=False)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor
    ) -> torch.Tensor:
        """Loss of ``logits`` against ``target`` given what each sample annotates.

        Parameters
        ----------
        logits : Tensor, shape (B, C, *spatial)
        target : Tensor of int, shape (B, 1, *spatial)
            Label map; 0 means background or an unannotated class.
        annotated : Tensor of bool, shape (B, C)
            Which classes each sample annotates. Background (channel 0) counts as annotated
            in every sample that annotates anything; a row with no True marks an unlabelled
            sample, which adds nothing to the loss.

        Returns
        -------
        Tensor, scalar
        """
        logits = logits.float()
        target = target.long()
        annotated = annotated.to(logits.device, torch.bool).clone()
        labelled = annotated.any(dim=1)
        annotated[:, 0] = labelled
        valid = labelled.view(-1, *([1] * (target.ndim - 1))).expand_as(target)
        if self.ignore_label is not None:
            valid = valid & (target != self.ignore_label)
        target = target.masked_fill(~valid, 0)
        if not valid.any():
            return logits.sum() * 0.0
        shape = (*annotated.shape, *([1] * (logits.ndim - 2)))
        log_probs = torch.log_softmax(logits, dim=1)
        merged = ~annotated
        merged[:, 0] = True  # background absorbs every class the sample did not annotate
        excluded = torch.zeros(shape, device=logits.device).masked_fill(
            ~merged.view(shape), -torch.inf
        )
        background = torch.logsumexp(log_probs + excluded, dim=1, keepdim=True)
        picked = torch.where(target == 0, background, log_probs.gather(1, target))
        weight = valid.float()
        if self.class_weights is not None:
            weight = weight * self.class_weights[target]
        ce = -(picked * weight).sum() / weight.sum()
        return self._dice(torch.softmax(logits, dim=1), target, valid, annotated) + ce

    def _dice(
        self,
        probs: torch.Tensor,
        target: torch.Tensor,
        valid: torch.Tensor,
        annotated: torch.Tensor,
    ) -> torch.Tensor:
        onehot = torch.zeros_like(probs).scatter_(1, target, 1.0)
        probs, onehot = probs * valid, onehot * valid
        axes = tuple(range(2, probs.ndim))
        intersection = (probs * onehot).sum(axes)
        total = probs.sum(axes) + onehot.sum(axes)
        counted = annotated[:, 1:].float()
        intersection, total = intersection[:, 1:] * counted, total[:, 1:] * counted
        if self.batch_dice:
            intersection, total = intersection.sum(0), total.sum(0)
            counted = (counted.sum(0) > 0).float()
        loss = 1 - (2 * intersection + SMOOTH) / (total + SMOOTH)
        return (loss * counted).sum() / counted.sum().clamp_min(1)


def annotated_mask(
    case_ids: Sequence[str], declared: Mapping[str, Sequence[int]], num_classes: int
) -> torch.Tensor:
    """The ``annotated`` argument of :class:`MarginalLoss` for a batch of cases.

    Parameters
    ----------
    case_ids : sequence of str
        The case of each sample.
    declared : mapping of str to sequence of int
        Annotated foreground classes of the partially labelled cases (others annotate all).
    num_classes : int
        Network outputs, background included.

    Returns
    -------
    Tensor of bool, shape (len(case_ids), num_classes)
    """
    return torch.from_numpy(annotated_rows(case_ids, declared, num_classes))


class WithEntropy(nn.Module):
    """``loss(logits, target, annotated) + weight * entropy(logits, target)``.

    The entropy term (:class:`medseg.train.weak_terms.EntropyTerm`) acts on voxels with the
    ignore label only, so it adds nothing to unlabelled samples (their label map is all 0).
    """

    def __init__(self, loss: MarginalLoss, weight: float) -> None:
        super().__init__()
        self.loss = loss
        self.weight = float(weight)
        self.entropy = EntropyTerm(ignore_label=loss.ignore_label)
        self.ignore_label = loss.ignore_label
        self.regions: tuple[tuple[int, ...], ...] = ()

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor
    ) -> torch.Tensor:
        """Marginal loss plus the weighted entropy on ignored voxels."""
        return self.loss(logits, target, annotated) + self.weight * self.entropy(logits, target)


def partial_loss(plan: Plan, config: Configuration, *, batch_dice: bool) -> nn.Module:
    """:class:`MarginalLoss` with the plan's ignore label, ``batch_dice`` (as
    :func:`medseg.train.losses.build_loss` resolves it) and ``config``'s class weights.

    With ``training.extra_losses`` ``{"entropy": w}`` (sparse labels) it adds that term
    (:class:`WithEntropy`).

    Raises
    ------
    ConfigError
        For region-based training or other loss terms (``training.loss``,
        ``training.extra_losses`` other than ``entropy``), which the marginal loss does not
        support.
    """
    if plan.regions:
        raise ConfigError(
            "partially labelled or unlabelled cases need softmax training; this plan trains "
            "regions (remove 'regions' from the plan or the partial/unlabelled cases)"
        )
    extra = dict(config.training.extra_losses)
    entropy = extra.pop("entropy", None)
    if config.training.loss != "dice_ce" or extra:
        raise ConfigError(
            "partially labelled or unlabelled cases train with the marginal Dice + CE loss; "
            "set training.loss to 'dice_ce' and keep at most the entropy term in "
            "training.extra_losses (--set 'training.extra_losses={\"entropy\": 0.1}'; the "
            "absence term would call the unlabelled images' unmarked voxels absent too)"
        )
    loss = MarginalLoss(
        ignore_label=plan.ignore_label,
        batch_dice=batch_dice,
        class_weights=config.training.class_weights,
    )
    return loss if entropy is None else WithEntropy(loss, entropy)
