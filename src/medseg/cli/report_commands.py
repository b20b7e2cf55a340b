"""``medseg report``: measurements, lesion table, change and a plain-language summary of a case."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from medseg.cli._options import output_option, parse_labels


def register(app: typer.Typer) -> None:
    app.command()(report)


def report(
    image: Annotated[Path, typer.Argument(help="The image (file or DICOM folder).")],
    segmentation: Annotated[
        Path, typer.Argument(help="Its label map on the same voxel grid, or a DICOM-SEG of it.")
    ],
    output: Annotated[Path, output_option("Folder for report.json, .html, .pdf and CSVs.")],
    dataset_json: Annotated[
        Path | None, typer.Option("--dataset-json", help="dataset.json with label names.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model folder: label names and training volumes."),
    ] = None,
    lesion_labels: Annotated[
        str | None,
        typer.Option(
            "--lesion-labels",
            help="Lesion classes, e.g. lesion,tumour or 3 (default: by name).",
        ),
    ] = None,
    prior: Annotated[
        tuple[Path, Path] | None,
        typer.Option("--prior", help="Prior image and its segmentation, for the change."),
    ] = None,
    uncertainty: Annotated[
        Path | None,
        typer.Option("--uncertainty", help="Uncertainty map in [0, 1] (entropy)."),
    ] = None,
    formats: Annotated[
        str, typer.Option("--formats", help="Outputs among json,csv,html,pdf.")
    ] = "json,csv,html,pdf",
    dicom_seg: Annotated[
        bool,
        typer.Option(
            "--dicom-seg",
            help="IMAGE is a DICOM series: also write OUTPUT/seg.dcm, the labels as its DICOM-SEG.",
        ),
    ] = False,
    summariser: Annotated[
        str | None,
        typer.Option(
            "--summariser",
            help="A local function module:name given the report dict, returning extra text.",
        ),
    ] = None,
) -> None:
    """Write report.json, tables, report.html and report.pdf for one segmented case."""
    from rich.console import Console

    from medseg.errors import ConfigError
    from medseg.report import report_files
    from medseg.report.api import ALL_FORMATS

    if dataset_json is not None and model is not None:
        raise ConfigError("give --dataset-json or --model, not both (both name the labels)")
    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in ALL_FORMATS]
    if unknown:
        raise ConfigError(
            f"--formats: unknown {', '.join(unknown)} (choose from json,csv,html,pdf)"
        )
    result, paths = report_files(
        image,
        segmentation,
        output,
        label_names=dataset_json or model,
        lesion_labels=parse_labels(lesion_labels) if lesion_labels else None,
        prior=prior,
        uncertainty=uncertainty,
        summariser=_load_summariser(summariser) if summariser else None,
        formats=chosen,  # type: ignore[arg-type]
        dicom_seg=dicom_seg,
    )
    Console(soft_wrap=True).print(result.summary, highlight=False)
    err = Console(stderr=True, soft_wrap=True)
    err.print(f"wrote {', '.join(str(p) for p in paths.values())}", highlight=False)


def report_predictions(outputs: list[Any], inputs: list[Path], model: Any, out_dir: Path) -> None:
    """Reports for the cases ``medseg predict`` wrote (``--report``), and the cohort CSV.

    ``outputs`` are the predictor's :class:`~medseg.infer.files.CaseOutput` records; ``model``
    its model folder (label and channel names, fingerprint).
    """
    from rich.console import Console

    from medseg.infer.files import segment_names
    from medseg.infer.inputs import find_inputs
    from medseg.report import LabelInfo, ReportCase, report_cohort

    paths = {case.case_id: case.paths for case in find_inputs(inputs)}
    cases = [
        ReportCase(
            case_id=o.case_id,
            image_paths=paths[o.case_id],
            segmentation=o.labels_path,
            uncertainty=o.extra.get("entropy"),
        )
        for o in outputs
    ]
    info = LabelInfo(
        names=segment_names(model),
        channel_names=model.channel_names,
        fingerprint=model.fingerprint,
    )
    result = report_cohort(cases, out_dir, labels=info)
    err = Console(stderr=True, soft_wrap=True)
    for case_id, message in result.failures.items():
        err.print(f"[red]report failed[/red] {case_id}: {message}", highlight=False)
    err.print(f"{len(result.reports)} report(s) in {out_dir}; cohort table {result.cohort_csv}")


def _load_summariser(spec: str) -> Callable[[dict[str, Any]], str]:
    """Import ``module:function`` (a local summariser the user wrote)."""
    import importlib

    from medseg.errors import ConfigError

    module_name, _, attr = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(
            f"--summariser {spec!r}: cannot import it ({err}); give module:function on PYTHONPATH"
        ) from err
    if not callable(function):
        raise ConfigError(f"--summariser {spec!r} is not a function")
    return function
