"""Evaluate a folder of predictions against a folder of references, in parallel over cases.

File discovery and pairing: :mod:`medseg.evaluate.discovery`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medseg._typing import PathLikeStr
from medseg.errors import GeometryError
from medseg.evaluate.calibration import Calibration, pool_calibrations
from medseg.evaluate.case import MetricOptions, evaluate_case
from medseg.evaluate.discovery import (
    labels_found,
    locate_reference,
    pair_cases,
    probability_files,
    read_label_map,
    read_probabilities,
)
from medseg.evaluate.labels import (
    ClassMap,
    classes_from_dataset_json,
    resolve_classes,
    resolve_tolerance,
)
from medseg.evaluate.result import EvaluationResult
from medseg.evaluate.summary import describe, summarize

log = logging.getLogger(__name__)
_EMPTY_REF = ("ref_empty", "both_empty")


@dataclass(frozen=True)
class _Task:
    case: str
    pred_path: Path
    ref_path: Path
    classes: ClassMap | None
    options: MetricOptions
    geometry_tol: float
    known_labels: frozenset[int] | None
    prob_path: Path | None = None


def _evaluate_task(task: _Task) -> dict[str, Any]:
    """Worker: read one pair, check it, compute its rows (runs in a subprocess)."""
    from medseg.io import geometry_differences

    pred, pred_img = read_label_map(task.pred_path)
    ref, ref_img = read_label_map(task.ref_path)
    problems = geometry_differences(pred_img, ref_img, atol=task.geometry_tol)
    if problems:
        raise GeometryError(
            f"{task.pred_path}: geometry differs from reference {task.ref_path.name}: "
            f"{'; '.join(problems)}; resample the prediction or raise --geometry-tol"
        )
    found = set(np.unique(pred).tolist()) | set(np.unique(ref).tolist())
    unexpected = sorted(found - task.known_labels) if task.known_labels is not None else []
    probabilities = None
    if task.prob_path is not None:
        probabilities = read_probabilities(task.prob_path, ref.shape)
    spacing = ref_img.spacing
    result = evaluate_case(
        pred, ref, spacing, task.classes, options=task.options, probabilities=probabilities
    )
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(ref.shape, spacing, strict=True)))
    rows = [{"case": task.case, **row, "image_diagonal_mm": diagonal} for row in result.rows]
    return {
        "case": task.case,
        "rows": rows,
        "unexpected": unexpected,
        "calibration": result.calibration,
    }


def evaluate_folders(
    pred_dir: PathLikeStr,
    ref_dir: PathLikeStr,
    *,
    out_dir: PathLikeStr | None = None,
    labels: Mapping[str, int] | Sequence[int | str] | None = None,
    regions: Mapping[str, Sequence[int]] | None = None,
    nsd_tolerance_mm: float | Mapping[str, float] | None = None,
    workers: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
    dataset_json: PathLikeStr | None = None,
    images_dir: PathLikeStr | None = None,
    probabilities_dir: PathLikeStr | None = None,
    geometry_tol: float = 1e-3,
    options: MetricOptions | None = None,
    seed: int = 0,
    report: bool = True,
    case_table: PathLikeStr | None = None,
) -> EvaluationResult:
    """Score every prediction against its reference, per case and class.

    Parameters
    ----------
    pred_dir : path
        Folder of predicted label maps.
    ref_dir : path
        Folder of reference label maps, or an nnU-Net dataset folder with ``labelsTr``.
    out_dir : path, optional
        Where to write ``metrics_per_case.csv``, ``summary.json`` and ``report.html``.
    labels : mapping of name to value, or sequence of values or dataset.json names, optional
        Labels to score. Default: from ``dataset.json``, else every value found.
    regions : mapping of name to sequence of values, optional
        Regions (unions of labels) to score as well.
    nsd_tolerance_mm : float or mapping, optional
        NSD tolerance in mm, one for all or per class (keys: class names or label values).
        Overrides ``options.nsd_tolerance_mm``; without any, NSD is not computed.
    workers : int
        Processes over cases; 1 runs in this process.
    on_progress : callable(done, total), optional
        Called after each case.
    dataset_json : path, optional
        Explicit ``dataset.json`` (default: next to ``ref_dir``).
    images_dir : path, optional
        Images for the report gallery (default: the dataset's ``imagesTr``).
    probabilities_dir : path, optional
        Softmax outputs ``<case>.npz`` (key ``probabilities``) or ``<case>.npy``, shape
        (C, Z, Y, X), channel = label value: adds the expected calibration error.
    geometry_tol : float
        Tolerance in mm (unitless for direction) when comparing prediction and reference.
    options : MetricOptions, optional
        Metric choices (boundary family, HD variant, matching, ...).
    seed : int
        Bootstrap seed.
    report : bool
        Also write the HTML report (needs ``out_dir``).
    case_table : path, optional
        When ``pred_dir`` holds ``classification.json`` (a model trained with ``--classify``):
        the case table with the true classes (default: ``cases.csv`` beside ``labelsTr``);
        AUC and accuracy go to the summary's ``classification``
        (:mod:`medseg.evaluate.classification`).

    Returns
    -------
    EvaluationResult

    Raises
    ------
    DatasetError
        An invalid ``dataset.json``, a missing pair, an unreadable or non-integer label map.
    GeometryError
        Prediction and reference grids differ beyond ``geometry_tol``.
    """
    layout = locate_reference(Path(ref_dir))
    json_path = Path(dataset_json) if dataset_json is not None else layout.dataset_json
    dataset = classes_from_dataset_json(json_path) if json_path is not None else None
    classes = resolve_classes(labels, regions, dataset)
    options = options or MetricOptions()
    if dataset is not None and options.ignore_label is None and dataset[2] is not None:
        options = replace(options, ignore_label=dataset[2])
    tolerance = nsd_tolerance_mm if nsd_tolerance_mm is not None else options.nsd_tolerance_mm
    if classes is not None:
        tolerance = resolve_tolerance(tolerance, classes)
    options = replace(options, nsd_tolerance_mm=tolerance)
    known = _known_labels(classes, dataset, options.ignore_label)
    pairs = pair_cases(Path(pred_dir), layout.labels_dir)
    if classes is None:
        classes = labels_found(pairs)
    probs = {}
    if probabilities_dir is not None:
        probs = probability_files(Path(probabilities_dir), [case for case, _, _ in pairs])
    tasks = [
        _Task(case, p, r, classes, options, geometry_tol, known, probs.get(case))
        for case, p, r in pairs
    ]
    outputs = _run(tasks, workers, on_progress)
    rows = [row for out in outputs for row in out["rows"]]
    unexpected = {out["case"]: out["unexpected"] for out in outputs if out["unexpected"]}
    for case, values in unexpected.items():
        warnings.warn(f"case {case}: label values {values} are not in the label set", stacklevel=2)
    empty_refs = [f"{r['case']}/{r['class']}" for r in rows if r["status"] in _EMPTY_REF]
    if empty_refs:
        shown = ", ".join(empty_refs[:5]) + (" ..." if len(empty_refs) > 5 else "")
        warnings.warn(
            f"{len(empty_refs)} case/class pair(s) have an empty reference: {shown}", stacklevel=2
        )
    summary = {
        "n_cases": len(outputs),
        "classes": summarize(rows, seed=seed),
        "unexpected_labels": unexpected,
        "options": _jsonable_options(options),
        "bootstrap_seed": seed,
        "pred_dir": str(pred_dir),
        "ref_dir": str(layout.labels_dir),
    }
    calibrations = {out["case"]: out["calibration"] for out in outputs if out["calibration"]}
    if calibrations:
        summary["calibration"] = _calibration_summary(calibrations, seed)
    classification = _classification(Path(pred_dir), case_table, layout.labels_dir.parent)
    if classification is not None:
        summary["classification"] = classification
    result = EvaluationResult(rows=rows, summary=summary, out_dir=None)
    if out_dir is None:
        return result
    from medseg.evaluate.outputs import write_outputs

    out = Path(out_dir)
    images = Path(images_dir) if images_dir is not None else layout.images_dir
    write_outputs(result, out, pairs=pairs, images_dir=images, report=report)
    return replace(result, out_dir=out)


def _classification(
    pred_dir: Path, case_table: PathLikeStr | None, dataset_root: Path
) -> dict[str, Any] | None:
    """Scores of ``pred_dir/classification.json`` when it exists (and a case table does)."""
    from medseg.data.case_table import CASE_TABLE_NAME
    from medseg.evaluate.classification import CLASSIFICATION_JSON, evaluate_classification

    if not (pred_dir / CLASSIFICATION_JSON).is_file():
        if case_table is not None:
            warnings.warn(
                f"{pred_dir}: no {CLASSIFICATION_JSON}, so no classification to score",
                stacklevel=3,
            )
        return None
    table = Path(case_table) if case_table is not None else dataset_root / CASE_TABLE_NAME
    if case_table is None and not table.is_file():
        warnings.warn(
            f"{pred_dir / CLASSIFICATION_JSON} is not scored: no case table ({table}); pass "
            "--case-table FILE",
            stacklevel=3,
        )
        return None
    return evaluate_classification(pred_dir, table)


def _calibration_summary(calibrations: Mapping[str, Calibration], seed: int) -> dict[str, Any]:
    per_case = {case: c.ece for case, c in calibrations.items()}
    pooled = pool_calibrations(list(calibrations.values()))
    return {
        "ece": describe(np.array(list(per_case.values())), np.random.default_rng(seed)),
        "ece_per_case": {c: (None if math.isnan(v) else v) for c, v in per_case.items()},
        "reliability": {
            "bin_edges": pooled.bin_edges.tolist(),
            "count": pooled.bin_counts.tolist(),
            "confidence": [None if math.isnan(v) else v for v in pooled.bin_confidence],
            "accuracy": [None if math.isnan(v) else v for v in pooled.bin_accuracy],
            "pooled_ece": None if math.isnan(pooled.ece) else pooled.ece,
        },
    }


def _known_labels(
    classes: ClassMap | None, dataset: tuple[Any, Any, int | None] | None, ignore: int | None
) -> frozenset[int] | None:
    if classes is None and dataset is None:
        return None
    values = {0} | {v for vs in (classes or {}).values() for v in vs}
    if dataset is not None:
        values |= {v for vs in dataset[0].values() for v in vs}
    if ignore is not None:
        values.add(ignore)
    return frozenset(values)


def _run(
    tasks: list[_Task], workers: int, on_progress: Callable[[int, int], None] | None
) -> list[dict[str, Any]]:
    total = len(tasks)
    results: dict[str, dict[str, Any]] = {}
    if workers <= 1 or total <= 1:
        for task in tasks:
            results[task.case] = _evaluate_task(task)
            if on_progress is not None:
                on_progress(len(results), total)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, total)) as pool:
            futures = [pool.submit(_evaluate_task, task) for task in tasks]
            try:
                for future in as_completed(futures):
                    out = future.result()
                    results[out["case"]] = out
                    if on_progress is not None:
                        on_progress(len(results), total)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    log.info("evaluated %d cases", total)
    return [results[task.case] for task in tasks]


def _jsonable_options(options: MetricOptions) -> dict[str, Any]:
    from medseg._config import to_jsonable

    data = to_jsonable(options)
    if isinstance(options.nsd_tolerance_mm, Mapping):
        data["nsd_tolerance_mm"] = dict(options.nsd_tolerance_mm)
    return data
