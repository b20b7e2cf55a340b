"""``medseg report``: measurements, lesion table, change and a plain-language summary of a case."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command()(report)


def report(
    image: Annotated[Path, typer.Argument(exists=True, help="The image (file or DICOM folder).")],
    segmentation: Annotated[
        Path, typer.Argument(exists=True, help="Its label map, on the same voxel grid.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder.")],
    labels: Annotated[
        Path | None,
        typer.Option("--labels", exists=True, help="dataset.json or model folder: label names."),
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
        typer.Option("--uncertainty", exists=True, help="Uncertainty map in [0, 1] (entropy)."),
    ] = None,
    formats: Annotated[
        str, typer.Option("--formats", help="Outputs among json,csv,html,pdf.")
    ] = "json,csv,html,pdf",
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
        labels=labels,
        lesion_labels=[s.strip() for s in lesion_labels.split(",")] if lesion_labels else None,
        prior=prior,
        uncertainty=uncertainty,
        summariser=_load_summariser(summariser) if summariser else None,
        formats=chosen,  # type: ignore[arg-type]
    )
    Console(soft_wrap=True).print(result.summary, highlight=False)
    err = Console(stderr=True, soft_wrap=True)
    err.print(f"wrote {', '.join(str(p) for p in paths.values())}", highlight=False)


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
