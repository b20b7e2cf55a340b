"""Overlap and volume metrics from the confusion counts of two masks.

Every ratio whose denominator is 0 is ``nan`` (e.g. sensitivity with an empty reference),
except Dice and IoU, which are 0 when exactly one mask is empty and ``nan`` when both are
(docs/evaluate.md, Empty masks: an empty output is never rewarded, and 0/0 is excluded and
counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medseg._typing import BoolArray, SpacingMM
from medseg.evaluate._checks import check_pair, check_spacing


@dataclass(frozen=True)
class Confusion:
    """Voxel counts of a mask pair: true/false positives/negatives."""

    tp: int
    fp: int
    fn: int
    tn: int


def confusion(pred: BoolArray, ref: BoolArray) -> Confusion:
    """Confusion counts of two bool masks of the same shape (any number of dimensions)."""
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    tp = int(np.count_nonzero(pred & ref))
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    return Confusion(tp=tp, fp=n_pred - tp, fn=n_ref - tp, tn=pred.size - n_pred - n_ref + tp)


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def overlap_metrics(c: Confusion) -> dict[str, float]:
    """Every confusion-matrix metric from the counts (MONAI's set, with the same formulas).

    Dice, IoU, precision (PPV), sensitivity (TPR), specificity (TNR), accuracy, MCC =
    (TP·TN − FP·FN) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN)), and: ``npv`` = TN/(TN+FN), ``fpr`` (fall-out)
    = FP/(FP+TN), ``fnr`` (miss rate) = FN/(FN+TP), ``fdr`` = FP/(FP+TP), ``for`` (false omission
    rate) = FN/(FN+TN), ``balanced_accuracy`` = (TPR+TNR)/2, ``fowlkes_mallows`` = √(PPV·TPR),
    ``informedness`` = TPR+TNR−1, ``markedness`` = PPV+NPV−1, ``prevalence_threshold`` =
    (√(TPR(1−TNR)) + TNR − 1)/(TPR+TNR−1). A ratio with a zero denominator is ``nan``, and so is
    any metric built from a ``nan`` ratio (as ``monai.metrics.compute_confusion_matrix_metric``).
    """
    empty_both = c.tp + c.fp + c.fn == 0
    mcc_den = math.sqrt(float(c.tp + c.fp) * (c.tp + c.fn) * float(c.tn + c.fp) * (c.tn + c.fn))
    tpr = _ratio(c.tp, c.tp + c.fn)
    tnr = _ratio(c.tn, c.tn + c.fp)
    ppv = _ratio(c.tp, c.tp + c.fp)
    npv = _ratio(c.tn, c.tn + c.fn)
    return {
        "dice": float("nan") if empty_both else 2 * c.tp / (2 * c.tp + c.fp + c.fn),
        "iou": float("nan") if empty_both else c.tp / (c.tp + c.fp + c.fn),
        "precision": ppv,
        "sensitivity": tpr,
        "specificity": tnr,
        "accuracy": _ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn),
        "mcc": _ratio(float(c.tp) * c.tn - float(c.fp) * c.fn, mcc_den),
        "npv": npv,
        "fpr": _ratio(c.fp, c.fp + c.tn),
        "fnr": _ratio(c.fn, c.fn + c.tp),
        "fdr": _ratio(c.fp, c.fp + c.tp),
        "for": _ratio(c.fn, c.fn + c.tn),
        "balanced_accuracy": (tpr + tnr) / 2,
        "fowlkes_mallows": math.sqrt(ppv * tpr),
        "informedness": tpr + tnr - 1,
        "markedness": ppv + npv - 1,
        "prevalence_threshold": _ratio(math.sqrt(tpr * (1 - tnr)) + tnr - 1, tpr + tnr - 1),
    }


def volume_metrics(c: Confusion, spacing: SpacingMM) -> dict[str, float]:
    """Reference and predicted volume in ml (1 ml = 1000 mm³) and the volume errors.

    ``abs_volume_error_ml`` = |V_pred − V_ref|; ``rel_volume_error`` = (V_pred − V_ref) / V_ref,
    signed, ``nan`` for an empty reference. For 2D masks the voxel size is an area, so the
    ``*_ml`` columns hold mm² / 1000.

    Parameters
    ----------
    c : Confusion
        Voxel counts of the mask pair.
    spacing : sequence of 3 (or, for 2D masks, 2) float
        Voxel size in mm, array order (z, y, x).

    Raises
    ------
    GeometryError
        ``spacing`` is not 2 or 3 positive finite values (``None``, a scalar, a zero...).
    """
    ndim = np.size(spacing) if np.ndim(spacing) == 1 and np.size(spacing) == 2 else 3
    voxel_ml = float(np.prod(check_spacing(spacing, ndim))) / 1000.0
    ref_ml = (c.tp + c.fn) * voxel_ml
    pred_ml = (c.tp + c.fp) * voxel_ml
    return {
        "ref_volume_ml": ref_ml,
        "pred_volume_ml": pred_ml,
        "abs_volume_error_ml": abs(pred_ml - ref_ml),
        "rel_volume_error": _ratio(pred_ml - ref_ml, ref_ml),
    }


def dice(pred: BoolArray, ref: BoolArray) -> float:
    """Dice coefficient 2|P∩R| / (|P| + |R|) of two bool masks.

    Parameters
    ----------
    pred, ref : ndarray of bool, shape (Z, Y, X) or (Y, X)
        Masks on the same voxel grid.

    Returns
    -------
    float
        In [0, 1]; ``nan`` if both masks are empty, 0 if exactly one is.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> dice(a, np.ones((4, 4), bool))
    0.6666666666666666
    """
    pred, ref, _ = check_pair(pred, ref, (1.0,) * np.ndim(ref))
    return overlap_metrics(confusion(pred, ref))["dice"]
