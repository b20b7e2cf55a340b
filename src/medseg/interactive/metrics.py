"""Summary numbers of an interaction sequence: area under the curve and number of clicks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def interaction_auc(scores: Sequence[float]) -> float:
    """Trapezoid area under a score curve with one unit per interaction step.

    ``[0.5, 0.7, 0.9]`` gives ``(0.5 + 0.7) / 2 + (0.7 + 0.9) / 2 = 1.4``. Fewer than two
    scores give 0; nan scores (steps not run) are dropped from the end only.
    """
    values = np.asarray(scores, dtype=float)
    while values.size and np.isnan(values[-1]):
        values = values[:-1]
    if values.size < 2:
        return 0.0
    return float(np.trapezoid(values, dx=1.0))


def number_of_clicks(ious: Sequence[float], threshold: float, *, max_clicks: int = 20) -> int:
    """Clicks needed to reach ``threshold`` IoU (the RITM NoC rule).

    ``ious[i]`` is the IoU after click ``i + 1``. The result is the first click count whose IoU
    reaches the threshold, or ``max_clicks`` if none does within the first ``max_clicks``.
    """
    values = np.asarray(ious, dtype=float)[:max_clicks]
    hits = np.flatnonzero(values >= threshold)
    return int(hits[0]) + 1 if hits.size else int(max_clicks)


def iou_from_dice(dice: float) -> float:
    """IoU of two masks from their Dice: ``J = D / (2 - D)``."""
    return float(dice / (2.0 - dice)) if np.isfinite(dice) else float("nan")
