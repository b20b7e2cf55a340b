"""Loss terms for weak labels: entropy on unlabelled voxels, the box prior (tightness + emptiness),
absence beyond the reach of marks.

All three are called like every term of :mod:`medseg.train.loss_terms`: ``term(logits, target)``
with logits (B, C, *spatial) and the label map target (B, 1, *spatial).

* ``entropy`` (Grandvalet & Bengio 2005, entropy minimisation): the mean Shannon entropy (nats)
  of the predicted distribution over the voxels that carry the *ignore* label, i.e. the voxels
  of sparse labels (scribbles, clicks, slices) that no annotation covers. The labelled voxels
  get no gradient from it; it pushes the network to a confident answer where no label says
  which. Softmax: ``-sum_c p_c log p_c``; regions: the binary entropy averaged over regions.
* ``box_prior`` (Kervadec et al. MIDL 2020, "Bounding boxes for weakly supervised segmentation:
  global constraints get close to full supervision"): on a *box label map* (each box's interior
  painted with its class, outside every box 0; ``medseg weak boxes --painted``), voxels labelled
  0 are background (emptiness: mean ``-log p_0``), and every line of voxels along an image axis
  that crosses a box of class ``c`` from background to background must hold at least one voxel
  of ``c``: the tightness penalty of such a line is ``relu(1 - sum_v p_c(v))``, averaged over
  lines. Lines cut by the patch border or ending in another box (a nested box), the ignore
  label or another class are not counted: their part inside the patch need not hold the
  object. A size bound (the paper bounds the object's size inside its box) asks the mean
  probability of ``c`` over the voxels painted ``c`` to reach :data:`BOX_FILL`: tightness alone
  is met by one voxel per line, which the arg-max never calls object.
* ``absence`` (complementary labels): for a class whose every object carries a mark
  (``every_object_marked`` in dataset.json, :mod:`medseg.data.marks`; e.g. one stroke per
  lesion), an unmarked voxel farther than the declared reach from every mark of the class is
  not of that class: mean ``-log(1 - p_c)`` over such voxels. The unmarked voxels near a mark
  stay free (only the entropy term acts there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from medseg.errors import ConfigError
from medseg.train.loss_terms import LossTerm


class EntropyTerm(nn.Module):
    """Mean prediction entropy over the voxels carrying the ignore label (sparse labels).

    Parameters
    ----------
    regions : sequence of sequences of int, optional
        Label values per region; empty for softmax training.
    ignore_label : int
        The label value of unlabelled voxels; required.
    """

    def __init__(
        self, *, regions: Sequence[Sequence[int]] = (), ignore_label: int | None = None
    ) -> None:
        super().__init__()
        self.regions = tuple(tuple(r) for r in regions)
        self.ignore_label = ignore_label
        if ignore_label is None:
            raise ConfigError(
                "the entropy term acts on voxels with the ignore label, and this dataset has "
                'none: add "ignore" to the labels of dataset.json (sparse labels; docs/weak.md)'
            )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean entropy over ignored voxels of ``logits`` (B, C, *spatial); 0 when none."""
        logits = logits.float()
        unlabelled = (target == self.ignore_label).to(logits.dtype)
        if not unlabelled.any():
            return logits.sum() * 0.0
        entropy = voxel_entropy(logits, regions=bool(self.regions))
        return (entropy * unlabelled[:, 0]).sum() / unlabelled.sum()


def voxel_entropy(logits: torch.Tensor, *, regions: bool = False) -> torch.Tensor:
    """Entropy in nats of each voxel's prediction, shape (B, *spatial).

    Softmax over the channel axis, or (``regions``) one sigmoid per channel with the binary
    entropies averaged over channels.
    """
    if regions:
        p = torch.sigmoid(logits)
        binary = -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits))
        return binary.mean(dim=1)
    log_p = torch.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def tightness_lines(
    probability: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor
) -> torch.Tensor:
    """Sum of ``probability`` along every counted line through a box, all axes.

    Parameters
    ----------
    probability : Tensor of float, shape (B, *spatial)
        Probability of the box's class.
    inside : Tensor of bool, shape (B, *spatial)
        Voxels inside a box of that class.
    outside : Tensor of bool, shape (B, *spatial)
        Voxels known to be background (outside every box).

    Returns
    -------
    Tensor of float, shape (n_lines,)
        For each maximal run of ``inside`` voxels along an axis whose neighbours on both ends
        are ``outside`` voxels (not the border), the sum of ``probability`` over the run.
    """
    sums = []
    for axis in range(1, probability.ndim):
        p = probability.movedim(axis, -1).reshape(-1, probability.shape[axis])
        box = inside.movedim(axis, -1).reshape(p.shape)
        out = outside.movedim(axis, -1).reshape(p.shape)
        n_lines, length = p.shape
        before = F.pad(box[:, :-1], (1, 0), value=False)
        after = F.pad(box[:, 1:], (0, 1), value=False)
        starts, ends = box & ~before, box & ~after
        out_before = F.pad(out[:, :-1], (1, 0), value=False)
        out_after = F.pad(out[:, 1:], (0, 1), value=False)
        run = torch.cumsum(starts.long(), dim=1)
        key = torch.arange(n_lines, device=p.device)[:, None] * (length + 1) + run
        slots = n_lines * (length + 1)
        total = p.new_zeros(slots).index_add(0, key[box], p[box])
        closed_start = torch.zeros(slots, dtype=torch.bool, device=p.device)
        closed_start[key[starts & out_before]] = True
        closed_end = torch.zeros(slots, dtype=torch.bool, device=p.device)
        closed_end[key[ends & out_after]] = True
        sums.append(total[closed_start & closed_end])
    return torch.cat(sums)


BOX_FILL = 0.5
"""Lower bound of the fraction of its box an object fills (an ellipse fills pi/4 of its 2D box,
an ellipsoid pi/6 of its 3D box)."""


class BoxPriorTerm(LossTerm):
    """Emptiness outside boxes, tightness and a size bound inside them, on a box label map.

    The value is the sum of the three parts of :meth:`parts` (see the module docstring); each
    is 0 when the patch has no voxel (line) it applies to. Softmax training only.
    """

    softmax_only = "box prior"

    def term(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None
    ) -> torch.Tensor:
        return sum(self.parts(logits, target, valid).values(), logits.sum() * 0.0)

    def parts(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The three parts for ``logits`` (B, C, *spatial) and the box map (B, 1, *spatial).

        ``emptiness``: mean ``-log p_0`` over the voxels outside every box (label 0).
        ``tightness``: mean ``relu(1 - sum_line p_c)`` over the counted lines of every class
        (:func:`tightness_lines`). ``size``: mean over the classes with box voxels in the batch
        of ``relu(BOX_FILL - mean_{label == c} p_c)``, the object filling at least half of
        its box. ``target`` has ignored voxels set to 0 and ``valid`` masks them.
        """
        log_p = torch.log_softmax(logits, dim=1)
        probs = log_p.exp()
        label = target[:, 0]
        counted = torch.ones_like(label, dtype=torch.bool) if valid is None else valid[:, 0] > 0
        outside = (label == 0) & counted
        zero = logits.sum() * 0.0
        emptiness = -log_p[:, 0][outside].mean() if outside.any() else zero
        lines, fills = [], []
        for c in range(1, probs.shape[1]):
            inside = (label == c) & counted
            if inside.any():
                lines.append(tightness_lines(probs[:, c], inside, outside))
                fills.append(F.relu(BOX_FILL - probs[:, c][inside].mean()))
        found = torch.cat(lines) if lines else probs.new_zeros(0)
        tightness = F.relu(1 - found).mean() if found.numel() else zero
        size = torch.stack(fills).mean() if fills else zero
        return {"emptiness": emptiness, "tightness": tightness, "size": size}


class AbsenceTerm(nn.Module):
    """Unmarked voxels beyond the reach of every mark of a fully marked class are not of it.

    For each class ``c`` of ``marked`` the counted voxels of a patch are those that carry the
    ignore label, have no voxel labelled ``c`` within ``ceil(reach / spacing)`` voxels along
    every axis (a box, which holds the ball of radius ``reach``, so no voxel within reach of a
    mark is counted), and lie at least that far inside the patch (a mark just outside the
    patch cannot be missed). The value is the mean of ``-log(1 - p_c)`` over them, averaged
    over the classes that have some; 0 when none has. Softmax training only. With
    ``patch_size`` given, a target of another shape (a lower output of deep supervision) adds
    0: nearest-neighbour downsampling can drop a short stroke, and the voxels around it would
    then be called absent.

    Parameters
    ----------
    marked : mapping of int to float
        Label value -> reach in mm (``Plan.every_object_marked``).
    spacing : sequence of float
        The patch's voxel size in mm, its axis order.
    ignore_label : int
        The label value of unmarked voxels.
    regions : sequence, optional
        Must be empty (regions are not supported).
    patch_size : sequence of int, optional
        The training patch; targets of other shapes are not scored.
    """

    def __init__(
        self,
        *,
        marked: Mapping[int, float],
        spacing: Sequence[float],
        ignore_label: int | None,
        regions: Sequence[Sequence[int]] = (),
        patch_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if regions:
            raise ConfigError("the absence term needs softmax training; this plan trains regions")
        if ignore_label is None or not marked:
            raise ConfigError(
                "the absence term needs sparse labels with an ignore label and classes whose "
                "every object is marked (every_object_marked in dataset.json; docs/weak.md)"
            )
        self.ignore_label = ignore_label
        self.patch_size = None if patch_size is None else tuple(int(n) for n in patch_size)
        self.reach_voxels = {
            int(c): tuple(math.ceil(r / s - 1e-9) for s in spacing)
            for c, r in sorted(marked.items())
        }

    def counted(self, target: torch.Tensor, value: int) -> torch.Tensor:
        """Mask (B, *spatial) of the voxels the term counts for class ``value``."""
        label = target[:, 0]
        reach = self.reach_voxels[value]
        near = (label == value).float()[:, None]
        pool = F.max_pool3d if len(reach) == 3 else F.max_pool2d
        for axis, k in enumerate(reach):  # a box max is separable: one 1D pool per axis
            kernel = [1] * len(reach)
            kernel[axis] = 2 * k + 1
            padding = [0] * len(reach)
            padding[axis] = k
            near = pool(near, tuple(kernel), stride=1, padding=tuple(padding))
        near = near[:, 0] > 0
        inside = torch.zeros_like(label, dtype=torch.bool)
        interior = (slice(k, n - k) for k, n in zip(reach, label.shape[1:], strict=True))
        inside[(slice(None), *interior)] = True
        return (label == self.ignore_label) & ~near & inside

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The term for ``logits`` (B, C, *spatial) and the label map ``target`` (B, 1, ...)."""
        logits = logits.float()
        if self.patch_size is not None and tuple(target.shape[2:]) != self.patch_size:
            return logits.sum() * 0.0
        log_p = torch.log_softmax(logits, dim=1)
        values = []
        for value in self.reach_voxels:
            counted = self.counted(target, value)
            if counted.any():
                others = torch.cat([log_p[:, :value], log_p[:, value + 1 :]], dim=1)
                values.append(-torch.logsumexp(others, dim=1)[counted].mean())
        return torch.stack(values).mean() if values else logits.sum() * 0.0


WEAK_TERMS: dict[str, type[nn.Module]] = {
    "entropy": EntropyTerm,
    "box_prior": BoxPriorTerm,
    "absence": AbsenceTerm,
}
"""The terms of this module by their plan name (``training.loss`` / ``training.extra_losses``)."""
