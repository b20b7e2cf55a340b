"""The end-to-end demo: example data -> training -> prediction -> evaluation -> HTML summary.

``medseg demo`` (the README's main command) calls :func:`run_demo`. Everything runs on the
built-in brain example (:func:`medseg.data.example.make_brain_example`): a small model is trained
on the training cases within a CPU time budget, the held-out cases (``imagesTs``, with their
references in ``labelsTs``) are predicted and scored, and ``summary.html`` shows overlays and the
metrics table. This module sits on top of the stages, like the CLI: it only calls their public
functions.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medseg._typing import PathLikeStr
from medseg.errors import DatasetError, MedsegError

StepCallback = Callable[[str], None]
ProgressCallback = Callable[[int, int], None]

STEPS = ("data", "train", "predict", "evaluate", "summary")


@dataclass(frozen=True, kw_only=True)
class DemoResult:
    """Where the demo wrote its outputs, the held-out Dice and the time each step took.

    ``dice`` maps case ID to ``{class name: Dice}``; ``seconds`` maps step name to wall time.
    """

    out_dir: Path
    dataset_dir: Path
    model_dir: Path
    predictions_dir: Path
    evaluation_dir: Path
    summary_html: Path
    dice: dict[str, dict[str, float]]
    mean_dice: dict[str, float]
    seconds: dict[str, float]


def run_demo(
    out: PathLikeStr,
    *,
    cases: int = 16,
    test_cases: int = 4,
    seed: int = 0,
    spacing_mm: float = 2.0,
    train_seconds: float = 420.0,
    device: str = "auto",
    on_step: StepCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> DemoResult:
    """Run the whole pipeline on the built-in brain example.

    Parameters
    ----------
    out : path
        Output folder; an existing demo dataset inside it is reused, the rest is redone.
    cases, test_cases : int
        Training cases and held-out cases of the generated dataset.
    seed : int
        Seed of the data generation and the training.
    spacing_mm : float
        Isotropic voxel size of the example (2 mm gives about 95 x 117 x 99 voxels).
    train_seconds : float
        CPU time budget the plan fits the training to (a GPU plans by memory instead).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    on_step : callable(name), optional
        Called when each of :data:`STEPS` starts.
    on_progress : callable(done, total), optional
        Progress within the current step.

    Returns
    -------
    DemoResult
    """
    from medseg.data import load_dataset
    from medseg.data.example import make_brain_example
    from medseg.evaluate import evaluate_folders
    from medseg.infer import Predictor, postprocessing_from_training
    from medseg.infer.files import predict_files
    from medseg.plan import PlanBudget
    from medseg.report import report_files
    from medseg.train import train_model

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset_dir = out_dir / "Dataset001_BrainExample"
    model_dir = out_dir / "model"
    predictions_dir = out_dir / "predictions"
    evaluation_dir = out_dir / "evaluation"
    seconds: dict[str, float] = {}

    def step(name: str) -> float:
        if on_step is not None:
            on_step(name)
        return time.perf_counter()

    start = step("data")
    if not (dataset_dir / "dataset.json").is_file():
        make_brain_example(
            dataset_dir,
            cases=cases,
            test_cases=test_cases,
            seed=seed,
            spacing_mm=spacing_mm,
            on_progress=on_progress,
        )
    dataset = load_dataset(dataset_dir)
    if not dataset.test_cases:
        raise DatasetError(f"{dataset_dir}: the demo needs held-out cases in imagesTs")
    seconds["data"] = time.perf_counter() - start

    start = step("train")
    budget = PlanBudget.for_device(device, time_budget_s=train_seconds)
    train_model(
        dataset,
        model_dir,
        folds="all",
        device=device,
        budget=budget,
        seed=seed,
        resume=False,
        on_progress=on_progress,
    )
    postprocessing_from_training(model_dir)  # as medseg train does: predict applies the rules
    seconds["train"] = time.perf_counter() - start

    start = step("predict")
    predictor = Predictor(model_dir, device=device)
    report = predict_files(
        predictor, dataset_dir / "imagesTs", predictions_dir, on_progress=on_progress
    )
    if not report.ok:
        failure = report.failures[0]
        raise MedsegError(f"prediction failed for {failure.case_id}: {failure.message}")
    seconds["predict"] = time.perf_counter() - start

    start = step("evaluate")
    evaluation = evaluate_folders(
        predictions_dir,
        dataset_dir / "labelsTs",
        out_dir=evaluation_dir,
        dataset_json=dataset_dir / "dataset.json",
        images_dir=dataset_dir / "imagesTs",
        nsd_tolerance_mm=2.0,
        on_progress=on_progress,
    )
    seconds["evaluate"] = time.perf_counter() - start

    start = step("summary")
    report_files(  # a clinical report (report.html/.pdf/.json) for the first held-out case
        dataset.test_cases[0].image_paths[0],
        predictions_dir / f"{dataset.test_cases[0].case_id}{dataset.file_ending}",
        out_dir / "report",
        label_names=model_dir,
    )
    dice = _dice_per_case(evaluation.rows)
    mean_dice = _mean_per_class(dice)
    summary_html = out_dir / "summary.html"
    _write_summary(
        summary_html,
        dice=dice,
        mean_dice=mean_dice,
        dataset_dir=dataset_dir,
        model_dir=model_dir,
        predictions_dir=predictions_dir,
        evaluation_dir=evaluation_dir,
        seconds=seconds,
    )
    seconds["summary"] = time.perf_counter() - start
    return DemoResult(
        out_dir=out_dir,
        dataset_dir=dataset_dir,
        model_dir=model_dir,
        predictions_dir=predictions_dir,
        evaluation_dir=evaluation_dir,
        summary_html=summary_html,
        dice=dice,
        mean_dice=mean_dice,
        seconds=seconds,
    )


def _dice_per_case(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    dice: dict[str, dict[str, float]] = {}
    for row in rows:
        dice.setdefault(str(row["case"]), {})[str(row["class"])] = float(row["dice"])
    return dice


def _mean_per_class(dice: dict[str, dict[str, float]]) -> dict[str, float]:
    import numpy as np

    classes = sorted({name for per_case in dice.values() for name in per_case})
    return {
        name: float(np.nanmean([d.get(name, np.nan) for d in dice.values()])) for name in classes
    }


def _write_summary(
    path: Path,
    *,
    dice: dict[str, dict[str, float]],
    mean_dice: dict[str, float],
    dataset_dir: Path,
    model_dir: Path,
    predictions_dir: Path,
    evaluation_dir: Path,
    seconds: dict[str, float],
) -> None:
    """One self-contained HTML page: timings, Dice table, training curve, overlays."""
    from medseg._atomic import write_text_atomic
    from medseg.evaluate.html_report import case_figure, find_image

    classes = list(mean_dice)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in classes)
    body = "".join(
        f"<tr><td>{html.escape(case)}</td>"
        + "".join(f"<td class='n'>{per_case.get(c, float('nan')):.3f}</td>" for c in classes)
        + "</tr>"
        for case, per_case in sorted(dice.items())
    )
    body += "<tr><th>mean</th>" + "".join(f"<th class='n'>{mean_dice[c]:.3f}</th>" for c in classes)
    report_link = (evaluation_dir / "report.html").relative_to(path.parent).as_posix()
    timing = ", ".join(f"{name} {secs:.0f} s" for name, secs in seconds.items())
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>medseg demo</title><style>",
        "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}",
        "table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee}",
        "th{background:#f4f4f4;text-align:left}td.n,th.n{text-align:right}",
        "img{max-width:100%}.meta{color:#555}</style></head><body>",
        "<h1>medseg demo: brain example</h1>",
        f"<p class='meta'>Dataset {html.escape(str(dataset_dir))}; model "
        f"{html.escape(str(model_dir))}; predictions {html.escape(str(predictions_dir))}. "
        f"Time: {html.escape(timing)}.</p>",
        "<h2>Dice on the held-out cases</h2>",
        f"<table><tr><th>case</th>{head}</tr>{body}</table>",
        f"<p>Full evaluation (HD95, NSD, lesion-wise F1, plots): "
        f"<a href='{html.escape(report_link)}'>{html.escape(report_link)}</a></p>",
        "<p>Clinical report of the first held-out case (volumes, lesion table, plain-language "
        "summary): <a href='report/report.html'>report/report.html</a> (also report.pdf, "
        "report.json).</p>",
    ]
    curve = next(iter(sorted(model_dir.glob("fold_*/progress.png"))), None)
    if curve is not None:
        data = base64.b64encode(curve.read_bytes()).decode("ascii")
        parts.append(
            f"<h2>Training curve</h2><img alt='training curve' src='data:image/png;base64,{data}'>"
        )
    parts.append("<h2>Held-out cases: image, reference, prediction</h2>")
    for case, per_case in sorted(dice.items()):
        pred = next(iter(sorted(predictions_dir.glob(f"{case}.*"))), None)
        ref = next(iter(sorted((dataset_dir / "labelsTs").glob(f"{case}.*"))), None)
        if pred is None or ref is None:
            continue
        score = float(sum(per_case.values()) / max(len(per_case), 1))
        figure = case_figure(case, score, pred, ref, find_image(dataset_dir / "imagesTs", case))
        parts.append(f"<img alt='{html.escape(case)}' src='data:image/png;base64,{figure}'>")
    parts.append("</body></html>")
    write_text_atomic("\n".join(parts), path)
