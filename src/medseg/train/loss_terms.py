"""Loss terms beyond Dice + CE: top-k CE, focal, Tversky, clDice, boundary, connectivity, NACL,
containment.

Each term is a module called like :class:`~medseg.train.losses.SegmentationLoss`:
``term(logits, target)`` with logits (B, C, *spatial) and the label map target (B, 1, *spatial).
Voxels with the ignore label count in no term. Without regions (softmax training) the
probabilities are the softmax over classes and the reference is one-hot; the overlap terms
(Dice, Tversky, clDice, boundary, connectivity) leave out the background channel 0, as nnU-Net's
Dice does. With regions (one sigmoid per region) the reference is the region masks and every
channel counts. :class:`CombinedLoss` sums weighted terms; ``training.loss`` and
``training.extra_losses`` of the plan choose them (docs/methods.md, Losses, gives each term's
paper and definition).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import edt
import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss, SoftclDiceLoss, TverskyLoss
from torch import nn

from medseg.errors import ConfigError

SMOOTH = 1e-5
FOCAL_GAMMA = 2.0
TOPK_FRACTION = 0.1
TVERSKY_ALPHA, TVERSKY_BETA = 0.3, 0.7
CLDICE_ITERATIONS = 3
NACL_KERNEL = 3
EPS = 1e-6


def labels_to_regions(label: torch.Tensor, regions: Sequence[Sequence[int]]) -> torch.Tensor:
    """Binary region masks from a label map.

    Parameters
    ----------
    label : Tensor of int, shape (B, 1, *spatial)
    regions : sequence of sequences of int
        Label values united by each region, in output-channel order.

    Returns
    -------
    Tensor of float32, shape (B, R, *spatial)
    """
    masks = [torch.isin(label[:, 0], torch.as_tensor(r, device=label.device)) for r in regions]
    return torch.stack(masks, dim=1).float()


def split_ignore(
    target: torch.Tensor, ignore_label: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The label map with ignored voxels set to 0, and the valid-voxel mask (B, 1, *spatial)."""
    target = target.long()
    if ignore_label is None:
        return target, None
    ignored = target == ignore_label
    return target.masked_fill(ignored, 0), (~ignored).float()


class LossTerm(nn.Module, ABC):
    """Shared plumbing: ignore label, softmax or sigmoid, one-hot or region reference.

    Subclasses implement ``term(logits, target, valid)`` where ``target`` has ignored voxels set
    to 0 and ``valid`` is the (B, 1, *spatial) mask of counted voxels, or ``None`` for all.

    Parameters
    ----------
    regions : sequence of sequences of int, optional
        Label values per region (output channel); empty for softmax training.
    ignore_label : int, optional
        Label value excluded from the term.
    """

    softmax_only: str = ""
    """The term's name in the error when it cannot train regions; empty if it can."""

    def __init__(
        self, *, regions: Sequence[Sequence[int]] = (), ignore_label: int | None = None
    ) -> None:
        super().__init__()
        self.regions = tuple(tuple(r) for r in regions)
        self.ignore_label = ignore_label
        if self.regions and self.softmax_only:
            raise ConfigError(
                f"the {self.softmax_only} needs softmax training; this plan trains regions "
                "(sigmoids)"
            )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Term of ``logits`` (B, C, *spatial) against the label map ``target`` (B, 1, *spatial)."""
        logits = logits.float()
        target, valid = split_ignore(target, self.ignore_label)
        if valid is not None and not valid.any():
            return logits.sum() * 0.0
        return self.term(logits, target, valid)

    @abstractmethod
    def term(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        """The term's value; ``target`` has ignored voxels set to 0, ``valid`` masks them."""

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid per region, or softmax over classes; shape of ``logits``."""
        return torch.sigmoid(logits) if self.regions else torch.softmax(logits, dim=1)

    def reference(self, target: torch.Tensor, channels: int) -> torch.Tensor:
        """Region masks, or the one-hot label map; float (B, channels, *spatial)."""
        if self.regions:
            return labels_to_regions(target, self.regions)
        return F.one_hot(target[:, 0], channels).movedim(-1, 1).float()

    def overlap_channels(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every region channel, or the foreground classes (channel 0 left out)."""
        return tensor if self.regions else tensor[:, 1:]


def _masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (B, C, *spatial) over channels and valid voxels."""
    if valid is None:
        return values.mean()
    return (values * valid).sum() / (valid.sum() * values.shape[1])


class CrossEntropyTerm(LossTerm):
    """Cross-entropy (softmax) or binary cross-entropy per region, optionally class-weighted."""

    def __init__(self, *, class_weights: Sequence[float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float)
        self.register_buffer("class_weights", weight, persistent=False)

    def term(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        if self.regions:
            masks = self.reference(target, logits.shape[1])
            bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
            if self.class_weights is not None:
                bce = bce * self.class_weights.view(1, -1, *([1] * (logits.ndim - 2)))
            return _masked_mean(bce, valid)
        ce_target = target[:, 0]
        if valid is not None:
            ce_target = ce_target.masked_fill(valid[:, 0] == 0, -100)
        return F.cross_entropy(logits, ce_target, weight=self.class_weights, ignore_index=-100)


class TopKCrossEntropyTerm(CrossEntropyTerm):
    """Cross-entropy over the hardest 10 % of the valid voxels of the batch (nnU-Net's TopK loss).

    Per-voxel CE (times the class weight of the voxel's reference class, without the weighted
    mean's normalisation), then the mean of the largest ``TOPK_FRACTION`` of the values. Voxels
    already classified well (most of the background) drop out of the mean, so a small class's
    voxels are a larger share of the gradient than under plain CE. Softmax training only.
    """

    softmax_only = "top-k CE (topk_ce)"

    def term(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        ce = F.cross_entropy(logits, target[:, 0], reduction="none")
        if self.class_weights is not None:
            ce = ce * self.class_weights[target[:, 0]]
        values = ce.flatten() if valid is None else ce[valid[:, 0] > 0]
        k = max(1, math.ceil(TOPK_FRACTION * values.numel()))
        return values.topk(k, sorted=False).values.mean()


class _OverlapTerm(LossTerm):
    """A MONAI overlap loss on valid-masked probabilities and reference."""

    def __init__(self, loss: nn.Module, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loss = loss

    def term(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        probs = self.probabilities(logits)
        ref = self.reference(target, logits.shape[1])
        if valid is not None:
            probs, ref = probs * valid, ref * valid
        return self.loss(self.overlap_channels(probs), self.overlap_channels(ref))


class DiceTerm(_OverlapTerm):
    """Soft Dice, MONAI's :class:`~monai.losses.DiceLoss` (smooth 1e-5)."""

    def __init__(self, *, batch_dice: bool = False, **kwargs: Any) -> None:
        loss = DiceLoss(smooth_nr=SMOOTH, smooth_dr=SMOOTH, batch=batch_dice)
        super().__init__(loss, **kwargs)


class TverskyTerm(_OverlapTerm):
    """Tversky loss ``1 - TP / (TP + 0.3 FP + 0.7 FN)``, MONAI's TverskyLoss (Salehi 2017)."""

    def __init__(self, *, batch_dice: bool = False, **kwargs: Any) -> None:
        loss = TverskyLoss(
            alpha=TVERSKY_ALPHA,
            beta=TVERSKY_BETA,
            smooth_nr=SMOOTH,
            smooth_dr=SMOOTH,
            batch=batch_dice,
        )
        super().__init__(loss, **kwargs)


class ClDiceTerm(_OverlapTerm):
    """Soft clDice on soft skeletons (3 iterations), MONAI's SoftclDiceLoss (Shit 2021)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(SoftclDiceLoss(iter_=CLDICE_ITERATIONS), **kwargs)


class FocalTerm(LossTerm):
    """Focal loss ``-(1 - p_t)**2 log p_t`` (Lin 2017), per voxel (softmax) or per region."""

    def term(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        if self.regions:
            masks = self.reference(target, logits.shape[1])
            log_pt = -F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
        else:
            log_pt = torch.log_softmax(logits, dim=1).gather(1, target)
        focal = -((1 - log_pt.exp()) ** FOCAL_GAMMA) * log_pt
        return _masked_mean(focal, valid)


class BoundaryTerm(LossTerm):
    """Boundary loss (Kervadec 2019): mean of the reference's signed distance times probability.

    The signed distance map is 0 on the reference's inner boundary, ``-(d - 1)`` inside (``d``
    the distance to the nearest outside voxel) and the distance to the nearest inside voxel
    outside; a channel whose reference is empty or full in a sample contributes 0. Distances are
    in voxels of the finest axis: ``spacing`` (mm, at ``patch_size``) makes them anisotropic, and
    outputs smaller than ``patch_size`` (deep supervision) get coarser voxels.
    """

    def __init__(
        self,
        *,
        spacing: Sequence[float] | None = None,
        patch_size: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spacing = None if spacing is None else tuple(spacing)
        self.patch_size = None if patch_size is None else tuple(patch_size)

    def _sampling(self, shape: Sequence[int]) -> tuple[float, ...]:
        if self.spacing is None or len(self.spacing) != len(shape):
            return (1.0,) * len(shape)
        finest = min(self.spacing)
        patch = self.patch_size if self.patch_size is not None else shape
        return tuple(s / finest * p / n for s, p, n in zip(self.spacing, patch, shape, strict=True))

    @torch.no_grad()
    def signed_distance(self, reference: torch.Tensor) -> torch.Tensor:
        """Signed distance maps of binary masks (B, C, *spatial), negative inside."""
        masks = reference.detach().cpu().numpy() > 0.5
        out = np.zeros(masks.shape, dtype=np.float32)
        sampling = self._sampling(masks.shape[2:])
        for b, c in np.ndindex(*masks.shape[:2]):
            mask = masks[b, c]
            if not mask.any() or mask.all():
                continue
            inside = edt.edt(np.ascontiguousarray(mask), anisotropy=sampling)
            outside = edt.edt(np.ascontiguousarray(~mask), anisotropy=sampling)
            out[b, c] = np.where(mask, 1.0 - inside, outside)
        return torch.from_numpy(out).to(reference.device)

    def term(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        probs = self.overlap_channels(self.probabilities(logits))
        ref = self.overlap_channels(self.reference(target, logits.shape[1]))
        return _masked_mean(self.signed_distance(ref) * probs, valid)


class ConnectivityTerm(LossTerm):
    """Pixel-pair connectivity (after ConnNet / BiconNet), derived from the probabilities.

    For every pair of face neighbours ``(x, x + e_d)`` and channel ``k``, the predicted
    connectivity ``p_k(x) p_k(x + e_d)`` is scored by binary cross-entropy against the
    reference connectivity (1 when both voxels belong to ``k``); a pair counts when both voxels
    are valid. The mean is over pairs, channels and axes.
    """

    def term(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        probs = self.overlap_channels(self.probabilities(logits))
        ref = self.overlap_channels(self.reference(target, logits.shape[1]))
        per_axis = []
        for axis in range(2, logits.ndim):
            n = logits.shape[axis]
            if n < 2:
                continue
            pair = probs.narrow(axis, 0, n - 1) * probs.narrow(axis, 1, n - 1)
            pair_ref = ref.narrow(axis, 0, n - 1) * ref.narrow(axis, 1, n - 1)
            pair_valid = None
            if valid is not None:
                pair_valid = valid.narrow(axis, 0, n - 1) * valid.narrow(axis, 1, n - 1)
                if not pair_valid.any():
                    continue
            bce = F.binary_cross_entropy(pair.clamp(EPS, 1 - EPS), pair_ref, reduction="none")
            per_axis.append(_masked_mean(bce, pair_valid))
        if not per_axis:
            return logits.sum() * 0.0
        return torch.stack(per_axis).mean()


class NaclTerm(LossTerm):
    """NACL penalty (Murugesan 2023): mean ``|tau - logits|``, tau the neighbours' label mix.

    ``tau`` is the one-hot reference averaged over a 3-voxel (per axis) window of valid voxels
    inside the image. Softmax training only; the paper's loss is ``ce`` plus 0.1 times this term.
    """

    softmax_only = "nacl penalty"

    def neighbour_average(
        self, target: torch.Tensor, valid: torch.Tensor | None, channels: int
    ) -> torch.Tensor:
        """The one-hot map averaged over valid neighbours, (B, C, *spatial)."""
        onehot = self.reference(target, channels)
        pool = F.avg_pool3d if onehot.ndim == 5 else F.avg_pool2d
        options = {"kernel_size": NACL_KERNEL, "stride": 1, "padding": NACL_KERNEL // 2}
        if valid is None:
            return pool(onehot, count_include_pad=False, **options)
        weight = pool(valid, **options)
        return pool(onehot * valid, **options) / weight.clamp_min(EPS)

    def term(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        tau = self.neighbour_average(target, valid, logits.shape[1])
        return _masked_mean((tau - logits).abs(), valid)


class ContainmentTerm(LossTerm):
    """Nested-region consistency: mean ``relu(p_inner - p_outer)`` over nested region pairs.

    A region is inner to another when its label values are a strict subset of the other's
    (BraTS: enhancing tumour in tumour core in whole tumour). Needs the reference only for the
    valid-voxel mask.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        sets = [set(r) for r in self.regions]
        self.pairs = [
            (outer, inner)
            for outer, outer_set in enumerate(sets)
            for inner, inner_set in enumerate(sets)
            if inner_set < outer_set
        ]
        if not self.pairs:
            raise ConfigError(
                "the containment penalty needs regions nested in others (plan.regions, e.g. "
                '{"whole": [1, 2], "core": [2]}); this plan has none'
            )

    def term(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        probs = torch.sigmoid(logits)
        outer = probs[:, [o for o, _ in self.pairs]]
        inner = probs[:, [i for _, i in self.pairs]]
        return _masked_mean(F.relu(inner - outer), valid)


TERMS: dict[str, type[LossTerm]] = {
    "ce": CrossEntropyTerm,
    "topk_ce": TopKCrossEntropyTerm,
    "dice": DiceTerm,
    "focal": FocalTerm,
    "tversky": TverskyTerm,
    "cldice": ClDiceTerm,
    "boundary": BoundaryTerm,
    "connectivity": ConnectivityTerm,
    "nacl": NaclTerm,
    "containment": ContainmentTerm,
}


def make_term(
    name: str,
    *,
    regions: Sequence[Sequence[int]] = (),
    ignore_label: int | None = None,
    class_weights: Sequence[float] | None = None,
    batch_dice: bool = False,
    spacing: Sequence[float] | None = None,
    patch_size: Sequence[int] | None = None,
) -> LossTerm:
    """The loss term registered as ``name``; only the options it uses are passed on.

    Raises
    ------
    ConfigError
        If ``name`` is unknown or the term does not fit the training mode.
    """
    if name not in TERMS:
        raise ConfigError(f"unknown loss term {name!r} (known: {sorted(TERMS)})")
    options: dict[str, Any] = {"regions": regions, "ignore_label": ignore_label}
    if name in ("ce", "topk_ce"):
        options["class_weights"] = class_weights
    if name in ("dice", "tversky"):
        options["batch_dice"] = batch_dice
    if name == "boundary":
        options.update(spacing=spacing, patch_size=patch_size)
    return TERMS[name](**options)


class CombinedLoss(nn.Module):
    """Weighted sum of loss modules sharing the ``(logits, target)`` call.

    Parameters
    ----------
    terms : sequence of (name, weight, module)
    regions, ignore_label
        The training mode, exposed for code that inspects the loss (label correction).
    """

    def __init__(
        self,
        terms: Sequence[tuple[str, float, nn.Module]],
        *,
        regions: Sequence[Sequence[int]] = (),
        ignore_label: int | None = None,
    ) -> None:
        super().__init__()
        if not terms or any(not math.isfinite(w) or w <= 0 for _, w, _ in terms):
            raise ConfigError("a combined loss needs terms with finite weights > 0")
        self.names = [name for name, _, _ in terms]
        self.weights = [float(w) for _, w, _ in terms]
        self.terms = nn.ModuleList([module for _, _, module in terms])
        self.regions = tuple(tuple(r) for r in regions)
        self.ignore_label = ignore_label

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted sum of every term on ``logits`` (B, C, *spatial), ``target`` (B, 1, ...)."""
        total = logits.new_zeros((), dtype=torch.float)
        for weight, term in zip(self.weights, self.terms, strict=True):
            total = total + weight * term(logits, target)
        return total
