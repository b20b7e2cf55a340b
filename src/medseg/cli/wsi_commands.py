"""``medseg wsi``: whole-slide images (tissue and pen masks, tiled prediction, synthetic slides)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import Device, output_option, seed_option

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


@wsi_app.command("predict")
def predict(
    model: Annotated[Path, typer.Argument(help="medseg 2D model folder trained on RGB tiles.")],
    slide: Annotated[Path, typer.Argument(help="Slide file (pyramidal TIFF, SVS, OME-TIFF).")],
    output: Annotated[Path, output_option("Label map to write: tiled pyramidal .tif.")],
    level: Annotated[int, typer.Option("--level", min=0, help="Pyramid level to predict.")] = 0,
    tile: Annotated[int, typer.Option("--tile", help="Output tile edge in pixels.")] = 256,
    halo: Annotated[int, typer.Option("--halo", min=0, help="Context per side (pixels).")] = 32,
    coarse: Annotated[
        float,
        typer.Option("--coarse", help="Coarse pass at this reduction of --level; 0 turns it off."),
    ] = 8.0,
    refine_threshold: Annotated[
        float,
        typer.Option("--refine-threshold", help="Refine tiles whose coarse foreground exceeds it."),
    ] = 0.1,
    all_tiles: Annotated[
        bool, typer.Option("--all-tiles", help="Predict glass too (no tissue mask).")
    ] = False,
    mask_mpp: Annotated[
        float, typer.Option("--mask-mpp", help="Tissue mask resolution in µm per pixel.")
    ] = 8.0,
    device: Device = "auto",
    mpp: Annotated[
        float | None, typer.Option("--mpp", help="Level-0 µm per pixel, overriding the file.")
    ] = None,
) -> None:
    """Segment a whole slide tile by tile (tissue only, coarse to fine), resumable after a kill."""
    import json
    import time
    import warnings

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from medseg.wsi import Slide, TiledSettings, TissueSettings, predict_slide, tissue_mask
    from medseg.wsi.models import predictor_tile_model

    settings = TiledSettings(
        level=level,
        tile=tile,
        halo=halo,
        tissue_only=not all_tiles,
        coarse_downsample=coarse if coarse > 0 else None,
        refine_threshold=refine_threshold,
    )
    err = Console(stderr=True, soft_wrap=True)
    columns = (
        TextColumn("tiles"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with (
            Slide(slide, mpp=mpp) as opened,
            Progress(
                *columns, console=err, transient=True, disable=not err.is_terminal
            ) as progress,
        ):
            mask = None if all_tiles else tissue_mask(opened, TissueSettings(mask_mpp=mask_mpp))
            tile_model = predictor_tile_model(model, mpp=opened.levels[level].mpp, device=device)
            task = progress.add_task("tiles", total=None, rate="")
            started = time.perf_counter()

            def on_progress(done: int, total: int) -> None:
                rate = done / max(time.perf_counter() - started, 1e-9)
                progress.update(task, completed=done, total=total, rate=f"{rate:.1f} tiles/s")

            report = predict_slide(
                opened, tile_model, output, tissue=mask, settings=settings, on_progress=on_progress
            )
    _print_warnings(caught)
    typer.echo(json.dumps(report.summary(), indent=2))


@wsi_app.command("synthetic")
def synthetic(
    output: Annotated[Path, output_option("Slide file to write (.tif).")],
    size: Annotated[int, typer.Option("--size", min=256, help="Edge of level 0 in pixels.")] = 8192,
    mpp: Annotated[float, typer.Option("--mpp", help="µm per pixel at level 0.")] = 0.5,
    seed: Annotated[int, seed_option("Seed of the tissue layout, nuclei and pen strokes.")] = 0,
) -> None:
    """Write a synthetic H&E-like pyramidal TIFF (tissue, tumour regions, nuclei, pen strokes)."""
    from medseg.wsi import SyntheticSlideSpec, write_synthetic_slide

    write_synthetic_slide(output, SyntheticSlideSpec(shape=(size, size), mpp=mpp, seed=seed))
    typer.echo(f"wrote {output}")
