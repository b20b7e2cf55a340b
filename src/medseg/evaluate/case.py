"""All metrics of one case: per class (a label) or region (a set of labels).

:func:`evaluate_case` is pure: arrays and options in, one row per class out. The empty-mask rule
(docs/evaluate.md, Empty masks) is recorded in each row's ``status``: ``"both_empty"`` rows hold
``nan`` for
the overlap and distance metrics (excluded from means and counted), ``"ref_empty"`` and
``"pred_empty"`` rows hold Dice/NSD 0 and distances ``inf`` (the image diagonal in aggregates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from medseg._typing import SpacingMM
from medseg.errors import ConfigError, GeometryError
from medseg.evaluate._checks import check_spacing
from medseg.evaluate.calibration import Calibration, expected_calibration_error
from medseg.evaluate.conventions import EmptyConvention, apply_empty_convention
from medseg.evaluate.detection import MatchMetric, lesion_metrics
from medseg.evaluate.overlap import confusion, overlap_metrics, volume_metrics
from medseg.evaluate.surface import (
    ASSDVariant,
    BoundaryMode,
    HDVariant,
    PercentileMethod,
    average_symmetric_surface_distance,
    compute_surface_distances,
    directed_average_distances,
    hausdorff,
    percentile_hausdorff,
    surface_dice,
)
from medseg.evaluate.topology import Connectivity, betti_errors

Classes = Mapping[str, "int | Sequence[int]"]
"""Class name -> one label value, or the label values of a region."""


@dataclass(frozen=True, kw_only=True)
class MetricOptions:
    """Every choice the metrics make; the defaults follow docs/evaluate.md (Empty masks).

    Attributes
    ----------
    boundary : {"surfel", "erosion"}
        DeepMind area-weighted surfels (default) or MONAI boundary voxels.
    nsd_tolerance_mm : float or mapping of class name to float, optional
        NSD tolerance in mm, one for all classes or one per class. ``None`` skips NSD: there is
        no silent default.
    hd_percentile : float
        Percentile of the robust Hausdorff distance (column ``hd95`` for 95).
    hd_variant : {"directed_max", "pooled"}
    percentile_method : {"weighted", "linear"}, optional
        Default: weighted for surfels, linear for erosion.
    assd_variant : {"pooled", "masd"}
    connectivity : {"full", "face"}
        Components and Betti numbers: 26/8-connected foreground (full) or 6/4 (face).
    match_metric : {"iou", "dice"}
    match_threshold : float
        Lesions match when their score is strictly above this.
    detection, topology : bool
        Compute the lesion-wise and Betti metrics.
    ece_bins : int
    ece_region : {"foreground", "all"}
    ignore_label : int, optional
        Reference voxels with this value are removed from both masks.
    empty_convention : {"medseg", "nnunet", "monai", "monai-keep-empty"}
        How rows with an empty mask are reported (:mod:`medseg.evaluate.conventions`).
    """

    boundary: BoundaryMode = "surfel"
    nsd_tolerance_mm: float | Mapping[str, float] | None = None
    hd_percentile: float = 95.0
    hd_variant: HDVariant = "directed_max"
    percentile_method: PercentileMethod | None = None
    assd_variant: ASSDVariant = "pooled"
    connectivity: Connectivity = "full"
    match_metric: MatchMetric = "iou"
    match_threshold: float = 0.5
    detection: bool = True
    topology: bool = True
    ece_bins: int = 15
    ece_region: Literal["foreground", "all"] = "foreground"
    ignore_label: int | None = None
    empty_convention: EmptyConvention = "medseg"

    def tolerance_for(self, name: str) -> float | None:
        """NSD tolerance in mm of class ``name`` (``None``: NSD not requested)."""
        tol = self.nsd_tolerance_mm
        if tol is None or not isinstance(tol, Mapping):
            return None if tol is None else float(tol)
        if name not in tol:
            raise ConfigError(
                f"no NSD tolerance for class {name!r}; give one per class "
                f"(have {sorted(tol)}) or a single value for all"
            )
        return float(tol[name])

    @property
    def hd_column(self) -> str:
        return f"hd{self.hd_percentile:g}".replace(".", "_")


@dataclass(frozen=True)
class CaseResult:
    """Metrics of one case.

    Attributes
    ----------
    rows : list of dict
        One row per class: ``class``, ``status`` and one float per metric.
    calibration : Calibration, optional
        Present when probabilities were given.
    """

    rows: list[dict[str, float | str]]
    calibration: Calibration | None = field(default=None)


def class_status(n_pred: int, n_ref: int) -> str:
    """``ok``, ``both_empty``, ``ref_empty`` or ``pred_empty`` from voxel counts."""
    if n_pred == 0 and n_ref == 0:
        return "both_empty"
    if n_ref == 0:
        return "ref_empty"
    return "pred_empty" if n_pred == 0 else "ok"


def evaluate_class(
    pred: npt.NDArray[np.bool_],
    ref: npt.NDArray[np.bool_],
    spacing: SpacingMM,
    options: MetricOptions,
    tol_mm: float | None,
) -> dict[str, float | str]:
    """All metrics of one bool mask pair; see :func:`evaluate_case` for the columns."""
    counts = confusion(pred, ref)
    row: dict[str, float | str] = {
        "status": class_status(counts.tp + counts.fp, counts.tp + counts.fn)
    }
    row.update(overlap_metrics(counts))
    row.update(volume_metrics(counts, spacing))
    sd = compute_surface_distances(pred, ref, spacing, boundary=options.boundary)
    row["hd"] = hausdorff(sd)
    row[options.hd_column] = percentile_hausdorff(
        sd, options.hd_percentile, variant=options.hd_variant, method=options.percentile_method
    )
    row["assd"] = average_symmetric_surface_distance(sd, variant=options.assd_variant)
    row["asd_ref_to_pred"], row["asd_pred_to_ref"] = directed_average_distances(sd)
    if tol_mm is not None:
        row["nsd"] = surface_dice(sd, tol_mm)
    if options.detection:
        row.update(
            lesion_metrics(
                pred,
                ref,
                connectivity=options.connectivity,
                match_metric=options.match_metric,
                threshold=options.match_threshold,
            )
        )
    if options.topology:
        row.update(
            {
                k: float(v)
                for k, v in betti_errors(pred, ref, connectivity=options.connectivity).items()
            }
        )
    return apply_empty_convention(row, options.empty_convention, options.hd_column)


def evaluate_case(
    pred: npt.NDArray[np.integer],
    ref: npt.NDArray[np.integer],
    spacing: SpacingMM,
    classes: Classes,
    *,
    options: MetricOptions | None = None,
    probabilities: npt.NDArray[np.floating] | None = None,
) -> CaseResult:
    """Evaluate one predicted label map against its reference.

    Parameters
    ----------
    pred, ref : ndarray of int, shape (Z, Y, X) or (Y, X)
        Label maps on the same voxel grid.
    spacing : tuple of float
        Voxel size in mm in array order (z, y, x).
    classes : mapping of str to int or sequence of int
        Class name -> label value, or -> label values of a region (their union).
    options : MetricOptions, optional
        Metric choices; defaults follow docs/evaluate.md (Empty masks).
    probabilities : ndarray of float, shape (C, Z, Y, X) or (C, Y, X), optional
        Softmax output (channel ``c`` = label ``c``); adds the expected calibration error.

    Returns
    -------
    CaseResult
        One row per class with ``class``, ``status`` and the metric columns: ``dice``, ``iou``,
        ``precision``, ``sensitivity``, ``specificity``, ``accuracy``, ``mcc``, ``npv``, ``fpr``,
        ``fnr``, ``fdr``, ``for``, ``balanced_accuracy``, ``fowlkes_mallows``, ``informedness``,
        ``markedness``, ``prevalence_threshold``,
        ``ref_volume_ml``, ``pred_volume_ml``, ``abs_volume_error_ml``, ``rel_volume_error``,
        ``hd``, ``hd95``, ``assd``, ``asd_ref_to_pred``, ``asd_pred_to_ref`` (mm), ``nsd`` (when a
        tolerance is set), ``lesion_tp/fp/fn``, ``lesion_f1``, ``lesion_dice`` and
        ``betti{k}_error``, ``betti_error``.
    """
    options = options or MetricOptions()
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise GeometryError(f"pred shape {pred.shape} differs from ref shape {ref.shape}")
    spacing = check_spacing(spacing, ref.ndim)
    if not classes:
        raise ConfigError("no classes to evaluate: give labels or regions")
    valid = None if options.ignore_label is None else ref != options.ignore_label
    rows = []
    for name, values in classes.items():
        labels = np.atleast_1d(np.asarray(values, dtype=np.int64))
        if labels.size == 1:
            p, r = pred == labels[0], ref == labels[0]
        else:
            p, r = np.isin(pred, labels), np.isin(ref, labels)
        if valid is not None:
            p &= valid
            r &= valid
        rows.append(
            {"class": name, **evaluate_class(p, r, spacing, options, options.tolerance_for(name))}
        )
    calibration = None
    if probabilities is not None:
        calibration = expected_calibration_error(
            probabilities, ref, n_bins=options.ece_bins, region=options.ece_region
        )
    return CaseResult(rows=rows, calibration=calibration)
