"""``medseg export``: a model folder's fold as an ONNX file (see docs/scale.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(export)


def export(
    model: Annotated[Path, typer.Argument(help="Trained model folder.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .onnx file to write.")],
    fold: Annotated[
        int | None,
        typer.Option("--fold", help="Fold to export (default: the first trained fold)."),
    ] = None,
) -> None:
    """Export a model to ONNX: dynamic batch and spatial axes, labels and preprocessing inside."""
    from rich.console import Console

    from medseg.scale.onnx_export import export_onnx, read_metadata

    path = export_onnx(model, output, fold=fold)
    meta = read_metadata(path)
    size_mb = path.stat().st_size / 1e6
    Console(soft_wrap=True).print(
        f"{path}: fold {meta['fold']} ({meta['configuration']}, {meta['activation']}, "
        f"labels {', '.join(meta['labels'])}), {size_mb:.1f} MB",
        highlight=False,
    )
