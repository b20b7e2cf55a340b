"""``medseg info``: what is in an image file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(info)


def info(
    image: Annotated[Path, typer.Argument(help="Image file or DICOM series folder.")],
    series: Annotated[
        str | None,
        typer.Option(help="SeriesInstanceUID to read when a DICOM folder holds several series."),
    ] = None,
) -> None:
    """Print shape, spacing, orientation and intensity range of an image."""
    from rich.console import Console

    from medseg.io.describe import describe_image

    Console(soft_wrap=True).print(describe_image(image, series_uid=series).table())
