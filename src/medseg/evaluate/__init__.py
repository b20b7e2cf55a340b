"""Segmentation metrics in mm: overlap, volume, boundary, detection, topology, calibration.

Each metric is a pure function of arrays (``dice``, ``hd95``, ``normalized_surface_dice``, ...);
:func:`evaluate_case` scores one label map pair per class or region, and
:func:`evaluate_folders` scores folders of cases in parallel and writes the CSV, JSON and HTML
outputs. Definitions, defaults and empty-mask rules: ``docs/evaluate.md``.
"""

from medseg.evaluate.calibration import Calibration, expected_calibration_error
from medseg.evaluate.case import CaseResult, MetricOptions, evaluate_case
from medseg.evaluate.detection import lesion_metrics
from medseg.evaluate.folders import evaluate_folders
from medseg.evaluate.overlap import confusion, dice, overlap_metrics, volume_metrics
from medseg.evaluate.result import EvaluationResult
from medseg.evaluate.summary import summarize
from medseg.evaluate.surface import (
    SurfaceDistances,
    average_symmetric_surface_distance,
    compute_surface_distances,
    directed_average_distances,
    hausdorff,
    hd95,
    normalized_surface_dice,
    percentile_hausdorff,
    surface_dice,
)
from medseg.evaluate.topology import betti_errors, betti_numbers

__all__ = [
    "Calibration",
    "CaseResult",
    "EvaluationResult",
    "MetricOptions",
    "SurfaceDistances",
    "average_symmetric_surface_distance",
    "betti_errors",
    "betti_numbers",
    "compute_surface_distances",
    "confusion",
    "dice",
    "directed_average_distances",
    "evaluate_case",
    "evaluate_folders",
    "expected_calibration_error",
    "hausdorff",
    "hd95",
    "lesion_metrics",
    "normalized_surface_dice",
    "overlap_metrics",
    "percentile_hausdorff",
    "summarize",
    "surface_dice",
    "volume_metrics",
]
