"""Expected calibration error with reliability-diagram data (docs/evaluate.md, Definitions).

Top-label ECE (Guo et al. 2017, as NACL/MarginLoss): each voxel's confidence is its largest class
probability and it is correct when that class equals the reference label. Voxels are binned by
confidence into ``n_bins`` equal bins ``(lo, hi]``, and
ECE = Σ_b (n_b / N) · |accuracy_b − confidence_b|. By default only voxels whose reference label
is not background (0) count; ``region="all"`` uses every voxel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from medseg.errors import ConfigError, GeometryError


@dataclass(frozen=True)
class Calibration:
    """ECE and its reliability diagram.

    Attributes
    ----------
    ece : float
        Expected calibration error in [0, 1]; ``nan`` when no voxel counts.
    bin_edges : ndarray of float, shape (n_bins + 1,)
    bin_counts : ndarray of int, shape (n_bins,)
    bin_confidence, bin_accuracy : ndarray of float, shape (n_bins,)
        Mean confidence and accuracy per bin; ``nan`` for empty bins.
    """

    ece: float
    bin_edges: npt.NDArray[np.float64]
    bin_counts: npt.NDArray[np.int64]
    bin_confidence: npt.NDArray[np.float64]
    bin_accuracy: npt.NDArray[np.float64]


def expected_calibration_error(
    probabilities: npt.NDArray[np.floating],
    ref: npt.NDArray[np.integer],
    *,
    n_bins: int = 15,
    region: Literal["foreground", "all"] = "foreground",
) -> Calibration:
    """Top-label expected calibration error of softmax probabilities.

    Parameters
    ----------
    probabilities : ndarray of float, shape (C, Z, Y, X) or (C, Y, X)
        Class probabilities; channel ``c`` is label value ``c``.
    ref : ndarray of int, shape (Z, Y, X) or (Y, X)
        Reference label map.
    n_bins : int
        Number of equal-width confidence bins.
    region : {"foreground", "all"}
        Voxels that count: reference label ≠ 0 (default) or all.

    Returns
    -------
    Calibration
    """
    probabilities = np.asarray(probabilities)
    ref = np.asarray(ref)
    if probabilities.shape[1:] != ref.shape:
        raise GeometryError(
            f"probabilities shape {probabilities.shape} must be (C, *{ref.shape}) to match ref"
        )
    if n_bins < 1:
        raise ConfigError(f"n_bins must be >= 1, got {n_bins}")
    if region not in ("foreground", "all"):
        raise ConfigError(f"region must be 'foreground' or 'all', got {region!r}")
    keep = ref != 0 if region == "foreground" else np.ones(ref.shape, bool)
    probs = probabilities[:, keep]
    confidence = probs.max(axis=0).astype(np.float64)
    correct = probs.argmax(axis=0) == ref[keep]
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, weights=confidence, minlength=n_bins) / counts
        acc = np.bincount(index, weights=correct, minlength=n_bins) / counts
    total = counts.sum()
    filled = counts > 0
    ece = (
        float(np.sum(counts[filled] / total * np.abs(acc[filled] - conf[filled])))
        if total
        else float("nan")
    )
    return Calibration(ece, edges, counts, conf, acc)


def pool_calibrations(calibrations: Sequence[Calibration]) -> Calibration:
    """Reliability diagram of all voxels of several cases together (same bins required).

    The pooled ``ece`` weighs every voxel equally; the per-case convention (docs/evaluate.md,
    Definitions, Calibration) is the mean of the cases' ``ece`` values, reported separately.
    """
    if not calibrations:
        raise ConfigError("no calibration results to pool")
    edges = calibrations[0].bin_edges
    if any(not np.array_equal(c.bin_edges, edges) for c in calibrations):
        raise ConfigError("cannot pool calibrations with different bins")
    counts = np.sum([c.bin_counts for c in calibrations], axis=0)
    conf_sum = np.sum([np.nan_to_num(c.bin_confidence) * c.bin_counts for c in calibrations], 0)
    acc_sum = np.sum([np.nan_to_num(c.bin_accuracy) * c.bin_counts for c in calibrations], 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf, acc = conf_sum / counts, acc_sum / counts
    total = counts.sum()
    filled = counts > 0
    ece = float(np.sum(counts[filled] / total * np.abs(acc - conf)[filled])) if total else np.nan
    return Calibration(ece, edges, counts, conf, acc)
