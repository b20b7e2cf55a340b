"""Removing small connected components of a label, and choosing the size by detection F1.

Small false-positive islands are what costs lesion detection most: each one is a false
positive in lesion-wise F1 however few voxels it has. :func:`remove_small_components` removes
the components of one label that have fewer than ``min_voxels`` voxels; their voxels take the
label of the nearest voxel outside them (a removed lesion inside white matter becomes white
matter, not a hole of background). :func:`medseg.infer.postprocessing.select_postprocessing`
picks ``min_voxels`` from cross-validation predictions, scoring detection targets by
:func:`pooled_f1`.

Components are 26-connected in 3D (8 in 2D), as in the other rules and in lesion-wise scoring.
A predicted and a reference component match one-to-one when their IoU is above 0.5 (then each
has at most one candidate, so the matching is unique); F1 = 2 TP / (2 TP + FP + FN) with the
counts summed over cases.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from medseg._typing import BoolArray, IntArray

SIZE_CANDIDATES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
"""Minimum component sizes (voxels) tried by :func:`choose_min_size`."""
MAX_DICE_LOSS = 0.01
"""How much a label's mean Dice may fall for an F1 gain to be accepted (absolute)."""


def components(mask: BoolArray) -> tuple[IntArray, int]:
    """Connected components of a 2D or 3D mask (full connectivity): ``(ids, count)``, 0 outside."""
    import cc3d

    connectivity = 26 if mask.ndim == 3 else 8
    ids, count = cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=connectivity, return_N=True
    )
    return ids, int(count)


def remove_small_components(labels: IntArray, label: int, min_voxels: int) -> IntArray:
    """Components of ``label`` smaller than ``min_voxels`` take the nearest other label.

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X) or (Y, X)
    label : int
        The label whose small components are removed.
    min_voxels : int
        Components with fewer voxels are removed; components of this size or more stay.

    Returns
    -------
    ndarray, same shape and dtype as ``labels`` (a copy)
    """
    out = labels.copy()
    ids, count = components(labels == label)
    if count == 0:
        return out
    sizes = np.bincount(ids.ravel(), minlength=count + 1)
    small = np.flatnonzero(sizes < min_voxels)
    small = small[small > 0]
    if small.size == 0:
        return out
    removed = np.isin(ids, small)
    if removed.all():
        out[:] = 0
        return out
    # nearest voxel outside the removed components, per removed voxel
    nearest = ndimage.distance_transform_edt(removed, return_distances=False, return_indices=True)
    out[removed] = labels[tuple(index[removed] for index in nearest)]
    return out


def detection_counts(pred: BoolArray, ref: BoolArray) -> tuple[int, int, int]:
    """``(TP, FP, FN)`` of components matched one-to-one with IoU > 0.5."""
    pred_ids, n_pred = components(pred)
    ref_ids, n_ref = components(ref)
    if n_pred == 0 or n_ref == 0:
        return 0, n_pred, n_ref
    both = (pred_ids > 0) & (ref_ids > 0)
    pairs, overlap = np.unique(
        pred_ids[both].astype(np.int64) * (n_ref + 1) + ref_ids[both], return_counts=True
    )
    p, r = pairs // (n_ref + 1), pairs % (n_ref + 1)
    pred_sizes = np.bincount(pred_ids.ravel(), minlength=n_pred + 1)
    ref_sizes = np.bincount(ref_ids.ravel(), minlength=n_ref + 1)
    iou = overlap / (pred_sizes[p] + ref_sizes[r] - overlap)
    tp = int((iou > 0.5).sum())
    return tp, n_pred - tp, n_ref - tp


def pooled_f1(predictions: Sequence[IntArray], references: Sequence[IntArray], label: int) -> float:
    """Lesion-wise F1 of ``label`` with TP/FP/FN summed over cases (NaN if none anywhere)."""
    tp = fp = fn = 0
    for pred, ref in zip(predictions, references, strict=True):
        a, b, c = detection_counts(pred == label, ref == label)
        tp, fp, fn = tp + a, fp + b, fn + c
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")


def is_multi_component(references: Sequence[IntArray], label: int) -> bool:
    """Whether ``label`` is a detection target: 2+ reference components per case that has it."""
    counts = [components(ref == label)[1] for ref in references]
    present = [c for c in counts if c]
    return bool(present) and float(np.mean(present)) >= 2.0
