"""``medseg wsi``: whole-slide images (tissue and pen masks, tiled prediction, synthetic slides)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from medseg.cli._options import Device, output_option, seed_option

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from medseg.wsi.tiled import SlidePredictionReport

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

    from medseg.wsi import TiledSettings

    settings = TiledSettings(
        level=level,
        tile=tile,
        halo=halo,
        tissue_only=not all_tiles,
        coarse_downsample=coarse if coarse > 0 else None,
        refine_threshold=refine_threshold,
    )
    report = segment_slide_with_progress(
        model, slide, output, settings=settings, mask_mpp=mask_mpp, device=device, mpp=mpp
    )
    typer.echo(json.dumps(report.summary(), indent=2))


def segment_slide_with_progress(
    model: Path, slide: Path, output: Path, **options: Any
) -> SlidePredictionReport:
    """:func:`medseg.wsi.segment_slide` with a tiles/s progress bar and warnings on stderr."""
    import time
    import warnings

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from medseg.wsi import segment_slide

    err = Console(stderr=True, soft_wrap=True)
    columns = (
        TextColumn("tiles"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
    )  # fmt: skip
    with (
        warnings.catch_warnings(record=True) as caught,
        Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress,
    ):
        warnings.simplefilter("always")
        task = progress.add_task("tiles", total=None, rate="")
        started = time.perf_counter()

        def on_progress(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=done, total=total, rate=f"{rate:.1f} tiles/s")

        report = segment_slide(model, slide, output, on_progress=on_progress, **options)
    _print_warnings(caught)
    return report


@wsi_app.command("tiles")
def tiles(
    slide: Annotated[Path, typer.Argument(help="Slide file.")],
    output: Annotated[Path, output_option("Dataset folder to create (nnU-Net 2D, PNG).")],
    geojson: Annotated[
        Path | None, typer.Option("--geojson", help="Polygons (QuPath GeoJSON export).")
    ] = None,
    label_image: Annotated[
        Path | None,
        typer.Option("--label-image", help="Label image covering the slide (PNG/TIFF)."),
    ] = None,
    classes: Annotated[
        str, typer.Option("--classes", help="Label per class name, e.g. Tumor=1,Stroma=2.")
    ] = "Tumor=1",
    level: Annotated[int, typer.Option("--level", min=0, help="Pyramid level to cut.")] = 0,
    tile: Annotated[int, typer.Option("--tile", help="Tile edge in pixels.")] = 512,
    min_labelled: Annotated[
        float, typer.Option("--min-labelled", help="Keep tiles more labelled than this.")
    ] = 0.0,
    tissue_only: Annotated[
        bool, typer.Option("--tissue-only/--all-tiles", help="Skip glass (tissue mask).")
    ] = True,
) -> None:
    """Cut a slide into RGB training tiles with labels from GeoJSON polygons or a label image."""
    import json

    from medseg.errors import ConfigError
    from medseg.wsi import Slide, extract_tiles, read_annotations, tissue_mask

    mapping = {}
    for item in classes.split(","):
        name, _, value = item.partition("=")
        if not name.strip() or not value.strip().isdigit():
            raise ConfigError(f"--classes {classes!r}: use Name=1,Other=2")
        mapping[name.strip()] = int(value)
    labels = None
    if label_image is not None:
        from medseg.io import read_image

        labels = read_image(label_image).array[0]
    annotations = read_annotations(geojson) if geojson is not None else None
    with Slide(slide) as opened:
        downsample = opened.shape[0] / labels.shape[0] if labels is not None else 1.0
        report = extract_tiles(
            opened, output, classes=mapping, annotations=annotations, label_image=labels,
            label_downsample=downsample, tissue=tissue_mask(opened) if tissue_only else None,
            level=level, tile=tile, min_labelled=min_labelled,
        )  # fmt: skip
    typer.echo(json.dumps({"output": str(report.output), "tiles": report.tiles}, indent=2))


@wsi_app.command("nuclei")
def nuclei(
    image: Annotated[Path, typer.Argument(help="Microscopy image (PNG/TIFF, grey or RGB H&E).")],
    output: Annotated[
        Path, output_option("Instance label image to write (.png or .tif); GeoJSON beside it.")
    ],
    head: Annotated[
        Path | None,
        typer.Option("--head", help="Trained nuclei head folder (default: watershed baseline)."),
    ] = None,
    min_distance: Annotated[
        int, typer.Option("--min-distance", min=1, help="Minimum nucleus centre distance (px).")
    ] = 4,
) -> None:
    """Nuclei instances as a label image plus QuPath GeoJSON (learned head or watershed)."""
    from medseg.io import read_image
    from medseg.wsi import NucleiHead, instances_to_geojson, watershed_nuclei, write_geojson
    from medseg.wsi.nuclei import nuclear_channel

    array = read_image(image).array
    if head is None:
        labels = watershed_nuclei(array, min_distance_px=min_distance)
    else:
        labels = NucleiHead(head).predict(
            nuclear_channel(array)[None], min_distance_px=min_distance
        )
    _write_instances(labels, output)
    geojson = output.with_name(output.name.split(".")[0] + ".geojson")
    write_geojson(instances_to_geojson(labels, classification="Nucleus"), geojson)
    typer.echo(f"wrote {output} and {geojson}: {int(labels.max())} nuclei")


def _write_instances(labels: npt.NDArray[np.integer], output: Path) -> None:
    import numpy as np

    from medseg.io import Image, write_image

    dtype = np.uint16 if labels.max() < 2**16 else np.uint32
    write_image(Image.from_array(labels.astype(dtype)[None]), output)


@wsi_app.command("train-nuclei")
def train_nuclei(
    output: Annotated[Path, output_option("Folder for the trained nuclei head.")],
    seconds: Annotated[float, typer.Option("--seconds", help="Training time budget.")] = 180.0,
    seed: Annotated[int, seed_option()] = 0,
) -> None:
    """Train the learned nuclei head on synthetic microscopy (no download) within a budget."""
    import json
    from dataclasses import asdict

    from medseg.wsi import NucleiHeadConfig, train_nuclei_head

    summary = train_nuclei_head(output, NucleiHeadConfig(seconds=seconds, seed=seed))
    typer.echo(json.dumps(asdict(summary), indent=2))


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
