"""``medseg wsi``: whole-slide images (tissue and pen masks, tiled prediction, synthetic slides)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

wsi_app = typer.Typer(
    help="Whole-slide images: tissue/pen masks, tiled prediction, synthetic slides.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(wsi_app, name="wsi")


def _print_warnings(caught: list) -> None:  # type: ignore[type-arg]
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    for warning in caught:
        err.print(f"[yellow]warning:[/yellow] {warning.message}")


@wsi_app.command("tissue")
def tissue(
    slide: Annotated[Path, typer.Argument(help="Slide file (pyramidal TIFF, SVS, OME-TIFF).")],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Mask file, .png or .tif (0 glass, 1 tissue, 2 pen)."),
    ],
    mask_mpp: Annotated[
        float, typer.Option("--mask-mpp", help="Mask resolution in µm per pixel.")
    ] = 8.0,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Saturation threshold 0-1 (default: Otsu)."),
    ] = None,
    no_pen: Annotated[bool, typer.Option("--no-pen", help="Do not detect pen marks.")] = False,
    mpp: Annotated[
        float | None, typer.Option("--mpp", help="Level-0 µm per pixel, overriding the file.")
    ] = None,
) -> None:
    """Tissue and pen-mark mask of a slide from a reduced level; prints the fractions as JSON."""
    import json
    import warnings

    from medseg.wsi import Slide, TissueSettings, tissue_mask, write_mask

    settings = TissueSettings(mask_mpp=mask_mpp, saturation_threshold=threshold, pens=not no_pen)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Slide(slide, mpp=mpp) as opened:
            mask = tissue_mask(opened, settings)
    _print_warnings(caught)
    write_mask(mask, output)
    typer.echo(json.dumps({"output": str(output), **mask.summary()}, indent=2))


@wsi_app.command("synthetic")
def synthetic(
    output: Annotated[Path, typer.Option("-o", "--output", help="Slide file to write (.tif).")],
    size: Annotated[int, typer.Option("--size", min=256, help="Edge of level 0 in pixels.")] = 8192,
    mpp: Annotated[float, typer.Option("--mpp", help="µm per pixel at level 0.")] = 0.5,
    seed: Annotated[int, typer.Option("--seed", help="Layout seed.")] = 0,
) -> None:
    """Write a synthetic H&E-like pyramidal TIFF (tissue, tumour regions, nuclei, pen strokes)."""
    from medseg.wsi import SyntheticSlideSpec, write_synthetic_slide

    write_synthetic_slide(output, SyntheticSlideSpec(shape=(size, size), mpp=mpp, seed=seed))
    typer.echo(f"wrote {output}")
