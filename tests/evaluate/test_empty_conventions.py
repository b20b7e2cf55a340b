"""Empty-mask conventions pinned to MONAI's and nnU-Net's values; MONAI's confusion metrics.

The cases where the tools differ: an empty reference with a non-empty prediction, both masks
empty, and an empty prediction. MONAI is run on the same masks (erosion boundaries, MONAI's own).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_confusion_matrix_metric,
    compute_dice,
    compute_hausdorff_distance,
    compute_iou,
    compute_surface_dice,
    get_confusion_matrix,
)

from medseg.errors import ConfigError
from medseg.evaluate import MetricOptions, evaluate_case
from medseg.evaluate.conventions import apply_empty_convention
from medseg.evaluate.overlap import confusion, overlap_metrics

SHAPE = (10, 12, 11)


def _blob(offset: int = 0) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[3:7, 3 + offset : 8 + offset, 2:7] = True
    return mask


EMPTY = np.zeros(SHAPE, bool)
CASES = {
    "ref_empty": (_blob(), EMPTY),
    "both_empty": (EMPTY, EMPTY),
    "pred_empty": (EMPTY, _blob()),
    "ok": (_blob(1), _blob()),
}


def _tensor(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask.astype(np.float32))[None, None]


def _monai(pred: np.ndarray, ref: np.ndarray, ignore_empty: bool) -> dict[str, float]:
    p, r = _tensor(pred), _tensor(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns on empty masks
        return {
            "dice": compute_dice(p, r, include_background=True, ignore_empty=ignore_empty).item(),
            "iou": compute_iou(p, r, include_background=True, ignore_empty=ignore_empty).item(),
            "hd": compute_hausdorff_distance(p, r, include_background=True).item(),
            "hd95": compute_hausdorff_distance(p, r, include_background=True, percentile=95).item(),
            "assd": compute_average_surface_distance(
                p, r, include_background=True, symmetric=True
            ).item(),
            "nsd": compute_surface_dice(
                p, r, class_thresholds=[1.5], include_background=True
            ).item(),
        }


def _ours(pred: np.ndarray, ref: np.ndarray, convention: str) -> dict:
    options = MetricOptions(
        boundary="erosion",
        nsd_tolerance_mm=1.5,
        empty_convention=convention,  # type: ignore[arg-type]
        detection=False,
        topology=False,
    )
    return evaluate_case(pred.astype(np.uint8), ref.astype(np.uint8), (1, 1, 1), {"a": 1},
                         options=options).rows[0]  # fmt: skip


def _same(ours: float, theirs: float) -> bool:
    if math.isnan(theirs) or math.isinf(theirs):
        return (math.isnan(ours) and math.isnan(theirs)) or ours == theirs
    return ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    ("convention", "ignore_empty"), [("monai", True), ("monai-keep-empty", False)]
)
@pytest.mark.parametrize("case", list(CASES))
def test_monai_conventions_give_monai_values(convention, ignore_empty, case) -> None:
    pred, ref = CASES[case]
    ours, theirs = _ours(pred, ref, convention), _monai(pred, ref, ignore_empty)
    assert ours["status"] == case
    different = {m: (ours[m], v) for m, v in theirs.items() if not _same(float(ours[m]), v)}
    assert not different, f"medseg vs MONAI: {different}"


def test_the_conventions_really_differ_where_a_reference_is_empty() -> None:
    pred, ref = CASES["ref_empty"]
    assert _ours(pred, ref, "medseg")["dice"] == 0.0
    assert math.isnan(_ours(pred, ref, "monai")["dice"])
    assert math.isinf(_ours(pred, ref, "medseg")["hd95"])
    assert math.isnan(_ours(pred, ref, "monai")["hd95"])
    both = CASES["both_empty"]
    assert _ours(*both, "monai-keep-empty")["dice"] == 1.0
    assert math.isnan(_ours(*both, "medseg")["dice"])


def _nnunet_dice_iou(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """nnU-Net v2's ``compute_metrics``: Dice and IoU nan when tp + fp + fn == 0."""
    tp = int(np.sum(pred & ref))
    fp = int(np.sum(pred & ~ref))
    fn = int(np.sum(~pred & ref))
    if tp + fp + fn == 0:
        return math.nan, math.nan
    return 2 * tp / (2 * tp + fp + fn), tp / (tp + fp + fn)


@pytest.mark.parametrize("case", list(CASES))
def test_nnunet_convention_gives_nnunet_values(case) -> None:
    pred, ref = CASES[case]
    ours = _ours(pred, ref, "nnunet")
    dice, iou = _nnunet_dice_iou(pred, ref)
    assert _same(ours["dice"], dice)
    assert _same(ours["iou"], iou)


def test_unknown_convention_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="monai-keep-empty"):
        apply_empty_convention({"status": "ok"}, "deepmind")  # type: ignore[arg-type]


MONAI_NAMES = {
    "sensitivity": "tpr",
    "specificity": "tnr",
    "precision": "ppv",
    "npv": "npv",
    "fnr": "fnr",
    "fpr": "fpr",
    "fdr": "fdr",
    "for": "for",
    "prevalence_threshold": "pt",
    "iou": "ts",
    "accuracy": "acc",
    "balanced_accuracy": "ba",
    "dice": "f1",
    "mcc": "mcc",
    "fowlkes_mallows": "fm",
    "informedness": "bm",
    "markedness": "mk",
}


def _random_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    pairs = [(rng.random(SHAPE) < f, rng.random(SHAPE) < g) for f, g in [(0.3, 0.4), (0.05, 0.6)]]
    full = np.ones(SHAPE, bool)
    return [*pairs, *CASES.values(), (full, full), (full, _blob()), (_blob(), full)]


@pytest.mark.parametrize("pair", range(len(_random_pairs())))
def test_confusion_metrics_match_monai(pair: int) -> None:
    pred, ref = _random_pairs()[pair]
    ours = overlap_metrics(confusion(pred, ref))
    one_hot = lambda m: torch.from_numpy(m.astype(np.float32))[None, None]  # noqa: E731
    # the counts are exact in float32; the ratios in float64 (prevalence threshold divides by a
    # difference close to 0, where float32 loses 3 digits)
    matrix = get_confusion_matrix(one_hot(pred), one_hot(ref), include_background=True).double()
    for column, name in MONAI_NAMES.items():
        theirs = compute_confusion_matrix_metric(name, matrix).item()
        assert _same(ours[column], theirs), (column, ours[column], theirs)
