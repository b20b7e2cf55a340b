"""``medseg evaluate``: score predicted label maps against references."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import Labels, Workers, output_option, parse_labels, seed_option


def register(app: typer.Typer) -> None:
    app.command()(evaluate)


def _check_convention(value: str) -> str:
    from medseg.evaluate.conventions import EMPTY_CONVENTIONS

    if value not in EMPTY_CONVENTIONS:
        raise typer.BadParameter(f"{value!r}: use {', '.join(EMPTY_CONVENTIONS)}")
    return value


def evaluate(
    pred: Annotated[Path, typer.Argument(help="Folder of predicted label maps.")],
    ref: Annotated[
        Path, typer.Argument(help="Folder of reference label maps, or a dataset with labelsTr.")
    ],
    output: Annotated[
        Path | None, output_option("Write CSV, summary JSON and HTML report here.")
    ] = None,
    labels: Labels = None,
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="Region to score as name=1,2,3 (repeatable)."),
    ] = None,
    nsd_tolerance: Annotated[
        str | None,
        typer.Option(
            "--nsd-tolerance",
            help="NSD tolerance in mm: 2 for all classes, or per class 1=2,2=1. Omit to skip NSD.",
        ),
    ] = None,
    dataset_json: Annotated[
        Path | None, typer.Option("--dataset-json", help="dataset.json with label names.")
    ] = None,
    images: Annotated[
        Path | None, typer.Option("--images", help="Images for the report gallery.")
    ] = None,
    probabilities: Annotated[
        Path | None,
        typer.Option(
            "--probabilities",
            help=(
                "Folder of softmax outputs (C, Z, Y, X): <case>.npz/.npy, or the "
                "<case>_probabilities.nii.gz of medseg predict --probabilities (the prediction "
                "folder itself): adds calibration (ECE)."
            ),
        ),
    ] = None,
    boundary: Annotated[
        str, typer.Option("--boundary", help="surfel (DeepMind, default) or erosion (MONAI).")
    ] = "surfel",
    empty_convention: Annotated[
        str,
        typer.Option(
            "--empty-convention",
            callback=_check_convention,
            help="Values where a mask is empty: medseg (default), nnunet, monai (MONAI's "
            "ignore_empty=True) or monai-keep-empty (ignore_empty=False).",
        ),
    ] = "medseg",
    workers: Workers = 1,
    geometry_tol: Annotated[
        float, typer.Option("--geometry-tol", help="Allowed geometry difference in mm.")
    ] = 1e-3,
    seed: Annotated[int, seed_option("Seed of the bootstrap confidence intervals.")] = 0,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML report.")] = False,
    instances: Annotated[
        bool,
        typer.Option("--instances", help="Instance maps (nuclei): F1 at IoU, PQ, SQ, AJI."),
    ] = False,
    iou_threshold: Annotated[
        float, typer.Option("--iou-threshold", help="Instances match when IoU exceeds it.")
    ] = 0.5,
    case_table: Annotated[
        Path | None,
        typer.Option(
            "--case-table",
            help="True classes for PRED/classification.json (medseg train --classify): AUC "
            "and accuracy. Default: cases.csv of the reference dataset.",
        ),
    ] = None,
) -> None:
    """Score predictions against references per case and class (Dice, HD95, NSD, ...)."""
    if instances:
        _evaluate_instances(pred, ref, output, iou_threshold)
        return
    import warnings

    from rich.console import Console
    from rich.progress import Progress

    from medseg.errors import ConfigError
    from medseg.evaluate import MetricOptions, evaluate_folders
    from medseg.evaluate.labels import parse_region, parse_tolerance

    if boundary not in ("surfel", "erosion"):
        raise ConfigError(f"--boundary must be surfel or erosion, got {boundary!r}")
    err = Console(stderr=True, soft_wrap=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("evaluating", total=None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate_folders(
                pred,
                ref,
                out_dir=output,
                labels=parse_labels(labels) if labels else None,
                regions=dict(parse_region(r) for r in region) if region else None,
                nsd_tolerance_mm=parse_tolerance(nsd_tolerance) if nsd_tolerance else None,
                workers=workers or 1,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                dataset_json=dataset_json,
                images_dir=images,
                probabilities_dir=probabilities,
                geometry_tol=geometry_tol,
                options=MetricOptions(
                    boundary=boundary,
                    empty_convention=empty_convention,  # type: ignore[arg-type]
                ),
                seed=seed,
                report=not no_report,
                case_table=case_table,
            )
    for warning in caught:
        err.print(f"[yellow]warning:[/yellow] {warning.message}")
    Console(soft_wrap=True).print(result.table())
    if "classification" in result.summary:
        Console(soft_wrap=True).print(describe_classification(result.summary["classification"]))
    if output is not None:
        err.print(
            f"wrote {output}/metrics_per_case.csv, summary.json"
            + ("" if no_report else ", report.html")
        )


def _evaluate_instances(pred: Path, ref: Path, out: Path | None, iou_threshold: float) -> None:
    from rich.console import Console

    from medseg.evaluate.instances import evaluate_instance_folders

    result = evaluate_instance_folders(pred, ref, out_dir=out, iou_threshold=iou_threshold)
    Console(soft_wrap=True).print(result.table())
    if out is not None:
        Console(stderr=True).print(f"wrote {out}/instances_per_case.csv, instances_summary.json")


def describe_classification(scores: dict) -> str:
    """One line: accuracy with its counts and the AUC of a case-level classification."""
    auc = "n/a" if scores["auc"] is None else f"{scores['auc']:.3f}"
    acc = "n/a" if scores["accuracy"] is None else f"{scores['accuracy']:.3f}"
    left = f"; {len(scores['unscored'])} case(s) left out" if scores["unscored"] else ""
    return (
        f"classification of {scores['target']}: accuracy {acc} ({scores['correct']}/"
        f"{scores['n']}), AUC {auc}{left}"
    )
