"""Lesion-wise detection: connected components matched one-to-one by overlap.

Definitions: docs/evaluate.md, "Detection (lesions)".

Components are labelled with cc3d (26-connected in 3D, 8 in 2D by default; ``"face"`` gives
6/4). A predicted and a reference component are a candidate pair when their IoU (or Dice) is
strictly above the threshold; pairs are accepted greedily in order of decreasing score, each
component at most once (as panoptica). With IoU > 0.5 every component has at most one candidate,
so the matching is unique.

Lesion-wise F1 = 2·TP / (2·TP + FP + FN). Lesion-wise Dice = Σ Dice of matched pairs /
(TP + FP + FN): misses and false positives score 0 (BraTS 2023 style, without its dilation).
Both are ``nan`` when neither mask has a component.
"""

from __future__ import annotations

from typing import Literal

import cc3d
import numpy as np

from medseg._typing import BoolArray
from medseg.errors import ConfigError
from medseg.evaluate._checks import check_pair, union_bbox

MatchMetric = Literal["iou", "dice"]


def lesion_metrics(
    pred: BoolArray,
    ref: BoolArray,
    *,
    connectivity: Literal["full", "face"] = "full",
    match_metric: MatchMetric = "iou",
    threshold: float = 0.5,
) -> dict[str, float]:
    """Match components of ``pred`` and ``ref`` and score the detection.

    Parameters
    ----------
    pred, ref : ndarray of bool, shape (Z, Y, X) or (Y, X)
        Masks on the same voxel grid.
    connectivity : {"full", "face"}
        26/8 (full) or 6/4 (face) neighbourhood for components.
    match_metric : {"iou", "dice"}
        Overlap score of a pair.
    threshold : float
        A pair matches when its score is strictly above this, in [0, 1).

    Returns
    -------
    dict
        ``lesion_tp``, ``lesion_fp``, ``lesion_fn`` (counts), ``lesion_f1``, ``lesion_dice``.
    """
    pred, ref, _ = check_pair(pred, ref, (1.0,) * np.ndim(ref))
    if match_metric not in ("iou", "dice"):
        raise ConfigError(f"match metric must be 'iou' or 'dice', got {match_metric!r}")
    if not 0 <= threshold < 1:
        raise ConfigError(f"match threshold must be in [0, 1), got {threshold}")
    if connectivity not in ("full", "face"):
        raise ConfigError(f"connectivity must be 'full' or 'face', got {connectivity!r}")
    full = connectivity == "full"
    conn = (26 if full else 6) if ref.ndim == 3 else (8 if full else 4)
    box = union_bbox(pred | ref)
    if box is None:
        return _scores(0, 0, 0, 0.0)
    # uint8, not bool: cc3d 4.1 can return non-consecutive ids for some bool masks
    pred_cc, n_pred = cc3d.connected_components(_u8(pred[box]), connectivity=conn, return_N=True)
    ref_cc, n_ref = cc3d.connected_components(_u8(ref[box]), connectivity=conn, return_N=True)
    both = (pred_cc > 0) & (ref_cc > 0)
    pairs, inter = np.unique(
        pred_cc[both].astype(np.int64) * (n_ref + 1) + ref_cc[both], return_counts=True
    )
    p_idx, r_idx = np.divmod(pairs, n_ref + 1)
    p_size = np.bincount(pred_cc.ravel(), minlength=n_pred + 1)[p_idx]
    r_size = np.bincount(ref_cc.ravel(), minlength=n_ref + 1)[r_idx]
    pair_dice = 2 * inter / (p_size + r_size)
    score = pair_dice if match_metric == "dice" else inter / (p_size + r_size - inter)
    used_p, used_r = set(), set()
    matched_dice = 0.0
    for k in np.argsort(-score, kind="stable"):
        if score[k] <= threshold:
            break
        if p_idx[k] in used_p or r_idx[k] in used_r:
            continue
        used_p.add(p_idx[k])
        used_r.add(r_idx[k])
        matched_dice += float(pair_dice[k])
    tp = len(used_p)
    return _scores(tp, int(n_pred) - tp, int(n_ref) - tp, matched_dice)


def _scores(tp: int, fp: int, fn: int, matched_dice: float) -> dict[str, float]:
    total = tp + fp + fn
    return {
        "lesion_tp": float(tp),
        "lesion_fp": float(fp),
        "lesion_fn": float(fn),
        "lesion_f1": 2 * tp / (2 * tp + fp + fn) if total else float("nan"),
        "lesion_dice": matched_dice / total if total else float("nan"),
    }


def _u8(mask: BoolArray) -> np.ndarray:
    return np.ascontiguousarray(mask, dtype=np.uint8)
