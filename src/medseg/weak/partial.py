"""Partially labelled datasets: cases that annotate only some classes, and the marginal loss.

A case may declare which foreground classes its label map annotates, in ``dataset.json``::

    "annotated_classes": {"case_007": [1, 3], "case_012": [2]}

Cases not listed annotate every class. In such a case a voxel labelled background means
"background or one of the classes this case did not annotate". :class:`MarginalLoss` trains on
that without calling the missing classes background (marginal loss, Shi et al., MedIA 2021):
the softmax probabilities of background and of the unannotated classes are summed before the
cross-entropy of background voxels, and the Dice term covers only the annotated foreground
classes of each case. When every class is annotated it equals medseg's Dice + CE
(:class:`medseg.train.losses.SegmentationLoss`), which a test checks.

:func:`annotated_classes` reads and checks the declaration: an unknown case or class, a
declared class absent from the case's label map, or an undeclared class present in it is a
:class:`~medseg.errors.DatasetError` naming the case and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg._atomic import write_text_atomic
from medseg.data.dataset import Dataset
from medseg.errors import DatasetError
from medseg.io import read_image

SMOOTH = 1e-5


class MarginalLoss(nn.Module):
    """Dice + CE for softmax outputs when each sample annotates only some classes.

    Parameters
    ----------
    ignore_label : int, optional
        Label value excluded from both terms.
    batch_dice : bool
        Dice over the whole batch (per class, over the samples annotating it).
    """

    def __init__(self, *, ignore_label: int | None = None, batch_dice: bool = False) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        self.batch_dice = batch_dice

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
            Which classes each sample annotates (channel 0, background, is always counted).

        Returns
        -------
        Tensor, scalar
        """
        logits = logits.float()
        target = target.long()
        annotated = annotated.to(logits.device, torch.bool).clone()
        annotated[:, 0] = True
        valid = torch.ones_like(target, dtype=torch.bool)
        if self.ignore_label is not None:
            valid = target != self.ignore_label
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
        ce = -(picked * valid).sum() / valid.sum()
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


def annotated_classes(dataset: Dataset) -> dict[str, tuple[int, ...]]:
    """The classes each partially labelled case annotates, checked against its label map.

    Parameters
    ----------
    dataset : Dataset
        An nnU-Net layout dataset whose ``dataset.json`` may hold ``annotated_classes``.

    Returns
    -------
    dict of str to tuple of int
        Case id -> annotated foreground classes, for the cases listed (others annotate all).

    Raises
    ------
    DatasetError
        The entry is malformed, names an unknown case or class, or a case's label map lacks a
        class it declares (or holds one it does not declare).
    """
    path = dataset.root / "dataset.json"
    meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    entry = meta.get("annotated_classes", {})
    if not isinstance(entry, dict):
        raise DatasetError(f"{path}: 'annotated_classes' must map case ids to lists of classes")
    foreground = set(dataset.labels.foreground.values())
    known = {c.case_id: c for c in dataset.labelled}
    out: dict[str, tuple[int, ...]] = {}
    for case_id, classes in sorted(entry.items()):
        where = f"{path}: annotated_classes[{case_id!r}]"
        if case_id not in known:
            raise DatasetError(f"{where}: no labelled case of that name")
        if not isinstance(classes, list) or not all(isinstance(c, int) for c in classes):
            raise DatasetError(f"{where}: must be a list of label values, e.g. [1, 3]")
        unknown = sorted(set(classes) - foreground)
        if unknown:
            raise DatasetError(
                f"{where}: {unknown} are not foreground classes of the dataset "
                f"({sorted(foreground)})"
            )
        label_path = known[case_id].label_path
        assert label_path is not None
        present = {int(v) for v in np.unique(read_image(label_path).array)} & foreground
        missing, extra = sorted(set(classes) - present), sorted(present - set(classes))
        if missing:
            raise DatasetError(
                f"{label_path}: the case declares classes {missing} in annotated_classes but its "
                "label map does not contain them; remove them from the declaration or add the "
                "missing annotation"
            )
        if extra:
            raise DatasetError(
                f"{label_path}: the label map contains classes {extra} that annotated_classes "
                f"does not declare for {case_id!r}; declare them"
            )
        out[case_id] = tuple(sorted(classes))
    return out


def annotated_mask(
    case_ids: list[str], declared: dict[str, tuple[int, ...]], num_classes: int
) -> torch.Tensor:
    """The ``annotated`` argument of :class:`MarginalLoss` for a batch of cases.

    Returns
    -------
    Tensor of bool, shape (len(case_ids), num_classes)
    """
    mask = torch.ones(len(case_ids), num_classes, dtype=torch.bool)
    for row, case_id in enumerate(case_ids):
        if case_id in declared:
            mask[row, 1:] = False
            mask[row, list(declared[case_id])] = True
    return mask


def write_partial_declaration(root: Path, declared: dict[str, list[int]]) -> None:
    """Add (or replace) ``annotated_classes`` in ``root/dataset.json``."""
    path = Path(root) / "dataset.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["annotated_classes"] = {k: sorted(v) for k, v in sorted(declared.items())}
    write_text_atomic(json.dumps(meta, indent=2) + "\n", path)
