"""Aggregate per-case rows into per-class statistics (the thin aggregator over the metrics).

For each class and metric: mean, median, standard deviation and a seeded 95 % percentile
bootstrap confidence interval of the mean, over the cases where the metric is defined.
``nan`` values (both masks empty, or 0/0 ratios) are excluded and counted. Infinite distances
(exactly one mask empty) are replaced by the case's image diagonal in mm before aggregating
(docs/evaluate.md, Empty masks), and counted too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DISTANCE_METRICS = ("hd", "assd", "asd_ref_to_pred", "asd_pred_to_ref")
"""Distance columns in mm (plus ``hd<p>`` for any percentile)."""
NON_METRIC_COLUMNS = ("case", "class", "status", "image_diagonal_mm")


def is_distance(metric: str) -> bool:
    """True for columns in mm whose ``inf`` becomes the image diagonal in aggregates."""
    return metric in DISTANCE_METRICS or (metric.startswith("hd") and metric[2:3].isdigit())


def metric_columns(rows: Sequence[dict[str, float | str]]) -> list[str]:
    """Metric column names in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update({k: None for k in row if k not in NON_METRIC_COLUMNS})
    return list(seen)


def bootstrap_ci(
    values: np.ndarray, rng: np.random.Generator, n_resamples: int = 1000
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of ``values`` (1-D, finite)."""
    if values.size == 0:
        return math.nan, math.nan
    if values.size == 1:
        return float(values[0]), float(values[0])
    means = rng.choice(values, size=(n_resamples, values.size), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def summarize(
    rows: Sequence[dict[str, float | str]], *, seed: int = 0, n_resamples: int = 1000
) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Per-class, per-metric statistics of case rows.

    Parameters
    ----------
    rows : sequence of dict
        Rows with ``class``, ``status``, ``image_diagonal_mm`` and metric columns.
    seed : int
        Seed of the bootstrap generator (results are reproducible).
    n_resamples : int
        Bootstrap resamples.

    Returns
    -------
    dict
        ``{class: {metric: {mean, median, std, ci95_low, ci95_high, n, n_nan, n_inf}}}`` and,
        per class, ``"status_counts"``: how many cases were ok / both_empty / ref_empty /
        pred_empty. Undefined statistics are ``None``.
    """
    rng = np.random.default_rng(seed)
    metrics = metric_columns(rows)
    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for name in dict.fromkeys(str(r["class"]) for r in rows):
        class_rows = [r for r in rows if r["class"] == name]
        stats: dict[str, dict[str, float | int | None]] = {}
        statuses = [str(r["status"]) for r in class_rows]
        stats["status_counts"] = {
            s: statuses.count(s) for s in ("ok", "both_empty", "ref_empty", "pred_empty")
        }
        for metric in metrics:
            raw = np.array([float(r.get(metric, math.nan)) for r in class_rows])
            diag = np.array([float(r.get("image_diagonal_mm", math.nan)) for r in class_rows])
            n_inf = int(np.isinf(raw).sum())
            if is_distance(metric):
                raw = np.where(np.isinf(raw), diag, raw)
            stats[metric] = {**describe(raw, rng, n_resamples), "n_inf": n_inf}
        out[name] = stats
    return out


def describe(
    values: np.ndarray, rng: np.random.Generator, n_resamples: int = 1000
) -> dict[str, float | int | None]:
    """Mean, median, std (ddof 1), bootstrap 95 % CI, ``n`` of the finite values, ``n_nan``."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    lo, hi = bootstrap_ci(finite, rng, n_resamples)
    return {
        "mean": _num(finite.mean()) if finite.size else None,
        "median": _num(np.median(finite)) if finite.size else None,
        "std": _num(finite.std(ddof=1)) if finite.size > 1 else None,
        "ci95_low": _num(lo),
        "ci95_high": _num(hi),
        "n": int(finite.size),
        "n_nan": int(np.isnan(values).sum()),
    }


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
