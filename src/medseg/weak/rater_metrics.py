"""Scoring a segmentation against several raters at once.

- per-rater Dice per class, and their mean;
- Dice to the STAPLE consensus (:func:`medseg.weak.raters.staple_consensus`);
- generalised energy distance (Kohl et al., NeurIPS 2018), with ``d = 1 - IoU`` averaged over
  the classes (a class empty in both maps counts as distance 0)::

      GED^2 = 2 E[d(S, Y)] - E[d(S, S')] - E[d(Y, Y')]

  over all pairs of predicted samples ``S`` and rater maps ``Y`` (pairs of a map with itself
  included, distance 0). One deterministic prediction is one sample; GED then measures how far
  it is from the raters relative to how much they disagree among themselves;
- calibration against the raters' agreement: expected calibration error of the predicted class
  probability against the fraction of raters marking the voxel (10 equal-width bins, over the
  voxels where the probability or any rater marks the class).

Arrays are spatial label maps, shape (Z, Y, X) or (Y, X); Dice follows medseg's empty-mask
convention (``nan`` when both masks are empty).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medseg._atomic import write_text_atomic
from medseg.data.dataset import Dataset
from medseg.errors import DatasetError, GeometryError
from medseg.evaluate.overlap import dice
from medseg.io import Image, geometry_differences, read_image
from medseg.weak.raters import rater_frequency, read_raters, staple_consensus


def iou_distance(a: np.ndarray, b: np.ndarray, classes: Sequence[int]) -> float:
    """``1 - IoU`` averaged over ``classes``; a class empty in both maps contributes 0."""
    distances = []
    for c in classes:
        x, y = a == c, b == c
        union = np.count_nonzero(x | y)
        distances.append(0.0 if union == 0 else 1.0 - np.count_nonzero(x & y) / union)
    return float(np.mean(distances))


def generalised_energy_distance(
    samples: Sequence[np.ndarray], raters: Sequence[np.ndarray], classes: Sequence[int]
) -> float:
    """Squared generalised energy distance between predicted samples and rater maps.

    Parameters
    ----------
    samples : sequence of ndarray of int
        Predicted label maps (one for a deterministic model).
    raters : sequence of ndarray of int
        The raters' label maps, same grid.
    classes : sequence of int
        Classes the distance averages over (usually the foreground classes).

    Returns
    -------
    float
        ``GED^2`` >= 0; 0 when the samples and raters are the same set of maps.
    """
    if not samples or not raters:
        raise DatasetError("generalised energy distance needs at least one sample and one rater")

    def mean_distance(first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> float:
        return float(np.mean([iou_distance(a, b, classes) for a in first for b in second]))

    cross = mean_distance(samples, raters)
    return 2 * cross - mean_distance(samples, samples) - mean_distance(raters, raters)


def agreement_calibration_error(
    probability: np.ndarray, agreement: np.ndarray, *, n_bins: int = 10
) -> float:
    """Expected calibration error of a class probability against the raters' agreement.

    Parameters
    ----------
    probability : ndarray of float, shape (Z, Y, X)
        Predicted probability of one class.
    agreement : ndarray of float, shape (Z, Y, X)
        Fraction of raters marking that class.
    n_bins : int

    Returns
    -------
    float
        Voxel-weighted mean over bins of ``|mean probability - mean agreement|``, over the
        voxels where either is positive; ``nan`` if there is none.
    """
    p, f = np.asarray(probability, float).ravel(), np.asarray(agreement, float).ravel()
    keep = (p > 0) | (f > 0)
    p, f = p[keep], f[keep]
    if p.size == 0:
        return float("nan")
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, p, n_bins) - np.bincount(bins, f, n_bins))
    return float(gap.sum() / count.sum())


def score_against_raters(
    prediction: np.ndarray,
    raters: np.ndarray,
    classes: Sequence[int],
    *,
    probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every several-raters metric of one case.

    Parameters
    ----------
    prediction : ndarray of int, shape (Z, Y, X)
    raters : ndarray of int, shape (R, Z, Y, X)
    classes : sequence of int
        Foreground classes to score.
    probabilities : ndarray of float, shape (C, Z, Y, X), optional
        Predicted class probabilities (channel = label value), for calibration.

    Returns
    -------
    dict
        ``dice_per_rater`` {class: [Dice of each rater]}, ``mean_rater_dice`` {class: mean},
        ``consensus_dice`` {class: Dice to the STAPLE consensus}, ``ged``, ``rater_distance``
        (mean ``1 - IoU`` between pairs of raters: their disagreement) and
        ``calibration_error`` {class} when
        probabilities are given.
    """
    consensus = staple_consensus(raters)
    per_rater = {str(c): [dice(prediction == c, r == c) for r in raters] for c in classes}
    out: dict[str, Any] = {
        "dice_per_rater": per_rater,
        "mean_rater_dice": {c: _nanmean(v) for c, v in per_rater.items()},
        "consensus_dice": {str(c): dice(prediction == c, consensus == c) for c in classes},
        "ged": generalised_energy_distance([prediction], list(raters), classes),
        "rater_distance": float(
            np.mean([iou_distance(a, b, classes) for a in raters for b in raters])
        ),
    }
    if probabilities is not None:
        agreement = rater_frequency(raters, max(classes) + 1)
        out["calibration_error"] = {
            str(c): agreement_calibration_error(probabilities[c], agreement[c]) for c in classes
        }
    return out


def evaluate_against_raters(
    predictions: str | Path,
    dataset: Dataset | str | Path,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Score a folder of predicted label maps against every rater of each case.

    Parameters
    ----------
    predictions : path
        Folder of ``<case><file ending>`` label maps (``medseg predict`` output). Where
        ``<case>_probabilities.nii.gz`` is there too (``medseg predict --probabilities``:
        softmax, channel = label value, stored x 255), calibration against the raters'
        agreement is scored as well.
    dataset : Dataset or path
        The several-raters dataset (``labelsTr/<case>_rater<k>``).
    output : path, optional
        JSON file to write (per case and the mean over cases).

    Returns
    -------
    dict
        ``cases`` {case: :func:`score_against_raters` result}, ``mean`` {metric: {class: mean}}.

    Raises
    ------
    DatasetError
        No case with raters has a prediction.
    GeometryError
        A prediction or rater file does not match the case's grid.
    """
    from medseg.data import load_dataset

    source = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    folder = Path(predictions)
    classes = sorted(source.labels.foreground.values())
    cases: dict[str, Any] = {}
    for case in source.cases:
        path = folder / f"{case.case_id}{source.file_ending}"
        if not case.rater_paths or not path.is_file():
            continue
        predicted = read_image(path)
        raters, _ = read_raters(case, predicted)
        probabilities = _probabilities(folder / f"{case.case_id}_probabilities.nii.gz", predicted)
        cases[case.case_id] = score_against_raters(
            predicted.array[0], raters, classes, probabilities=probabilities
        )
    if not cases:
        raise DatasetError(
            f"{folder}: no prediction named <case>{source.file_ending} for a case with rater "
            f"files in {source.root}"
        )
    result = {"cases": cases, "mean": _summary(cases)}
    if output is not None:
        write_text_atomic(json.dumps(result, indent=2) + "\n", Path(output))
    return result


def _probabilities(path: Path, predicted: Image) -> np.ndarray | None:
    """Softmax probabilities saved by ``medseg predict`` (uint8 x 255), or None if absent."""
    if not path.is_file():
        return None
    image = read_image(path)
    problems = geometry_differences(image, predicted)
    if problems:
        raise GeometryError(f"{path}: does not match its label map ({'; '.join(problems)})")
    array = image.array.astype(np.float32)
    return array / 255.0 if image.array.dtype == np.uint8 else array


def _summary(cases: dict[str, Any]) -> dict[str, Any]:
    rows = list(cases.values())
    out: dict[str, Any] = {}
    for key in ("mean_rater_dice", "consensus_dice"):
        out[key] = {c: _nanmean([r[key][c] for r in rows]) for c in rows[0][key]}
    calibrated = [r for r in rows if "calibration_error" in r]
    if calibrated:
        out["calibration_error"] = {
            c: _nanmean([r["calibration_error"][c] for r in calibrated])
            for c in calibrated[0]["calibration_error"]
        }
    out["ged"] = _nanmean([r["ged"] for r in rows])
    out["rater_distance"] = _nanmean([r["rater_distance"] for r in rows])
    return out


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")
