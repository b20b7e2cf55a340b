"""``medseg predict`` and ``medseg postprocess``: apply a model folder; choose post-processing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import (
    Device,
    Threads,
    apply_threads,
    folds_option,
    output_option,
    parse_folds,
    workers_option,
)


def register(app: typer.Typer) -> None:
    app.command()(predict)
    app.command()(postprocess)


def predict(
    model: Annotated[
        Path, typer.Argument(help="Trained model folder, or an ensemble folder (ensemble.json).")
    ],
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Image files, folders (case_0000/_0001 channels grouped), DICOM series folders "
            "or whole-slide images (SVS, pyramidal TIFF: tile by tile to OUT/<name>.tif).",
        ),
    ],
    output: Annotated[Path, output_option("Folder for the label maps (and extras).")],
    probabilities: Annotated[
        bool, typer.Option("--probabilities", help="Also write class probabilities (uint8).")
    ] = False,
    uncertainty: Annotated[
        bool,
        typer.Option("--uncertainty", help="Also write entropy and mutual-information maps."),
    ] = False,
    fast: Annotated[bool, typer.Option("--fast", help="No mirroring (about 4-8x faster).")] = False,
    device: Device = "auto",
    folds: Annotated[str, folds_option("Folds to average: 0,1,2 or 'all' (the default).")] = "all",
    threads: Threads = None,
    step: Annotated[
        float, typer.Option("--step", min=0.05, max=1.0, help="Tile step as a patch fraction.")
    ] = 0.5,
    volumes: Annotated[
        bool, typer.Option("--volumes/--no-volumes", help="Write {case}_volumes.json.")
    ] = True,
    clinical_report: Annotated[
        bool,
        typer.Option("--report", help="Also write OUTPUT/reports/<case>/report.* and cohort.csv."),
    ] = False,
    dicom_seg: Annotated[
        bool,
        typer.Option(
            "--dicom-seg",
            help="For DICOM series inputs, also write <case>_seg.dcm (DICOM-SEG of the series).",
        ),
    ] = False,
    text: Annotated[
        str | None,
        typer.Option(
            "--text",
            metavar="PHRASE",
            help='Also select what PHRASE names ("largest lesion on the left"): '
            "OUTPUT/text/<case>/selection.* (see medseg find).",
        ),
    ] = None,
    runtime: Annotated[
        str, typer.Option("--runtime", help="Network engine: torch, or onnx (onnxruntime).")
    ] = "torch",
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run on Ray: 'local' starts Ray here, an address (auto, ray://head:10001) "
            "joins a cluster; writes OUT/manifest.json, a re-run predicts only what is missing.",
        ),
    ] = None,
    workers: Annotated[
        int | None, workers_option("With --ray: Ray workers (default: as many as the CPUs allow).")
    ] = None,
    case_table: Annotated[
        Path | None,
        typer.Option(
            "--case-table",
            help="CSV with a 'case' column and the metadata fields of a model trained with "
            "--classify; class probabilities go to OUTPUT/classification.csv (docs/methods.md).",
        ),
    ] = None,
) -> None:
    """Segment images with a trained model; outputs keep each input's geometry."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from medseg.errors import ImageReadError, MedsegError
    from medseg.scale import make_predictor

    for path in inputs:
        if not path.exists():
            raise ImageReadError(f"{path}: no such file or folder (give image files or folders)")
    fold_list = parse_folds(folds)
    chosen = None if fold_list == "all" else fold_list
    slides = _slides_among(inputs, ray=ray, runtime=runtime)
    if slides:
        _predict_slides(model, slides, output, device=device, folds=chosen)
        inputs = [path for path in inputs if path not in slides]
        if not inputs:
            return
    if ray is not None:
        if case_table is not None:
            from medseg.errors import ConfigError

            raise ConfigError("--case-table (classification) is not available with --ray")
        _predict_on_ray(
            model,
            inputs,
            output,
            address=None if ray == "local" else ray,
            runtime=runtime,
            workers=workers,
            threads=threads or 1,
            device=device,
            folds=chosen,
            tta=not fast,
            step=step,
            probabilities=probabilities,
            uncertainty=uncertainty,
            volumes=volumes,
            dicom_seg=dicom_seg,
        )
        return

    apply_threads(threads)
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    predictor = make_predictor(
        model,
        runtime=runtime,
        device=device,
        folds=chosen,
        fast=fast,
        step=step,
        case_table=case_table,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        cases = bar.add_task("cases", total=None)
        tiles = bar.add_task("tiles", total=None)

        def on_case(case_id: str, done: int, total: int) -> None:
            bar.update(tiles, description=case_id, completed=done, total=total)

        report = predictor.predict_files(
            inputs,
            output,
            probabilities=probabilities,
            uncertainty=uncertainty,
            volumes_json=volumes,
            dicom_seg=dicom_seg,
            on_progress=lambda done, total: bar.update(cases, completed=done, total=total),
            on_case_progress=on_case,
        )
    for case in report.outputs:
        note = f"  ({case.note})" if case.note else ""
        out.print(f"{case.case_id}: {case.labels_path}{note}")
    for failure in report.failures:
        err.print(f"[red]failed[/red] {failure.case_id}: {failure.message}", highlight=False)
    err.print(f"{len(report.outputs)} case(s) written to {output}, {len(report.failures)} failed")
    if any(case.classification is not None for case in report.outputs):
        err.print(f"class probabilities written to {output / 'classification.csv'}")
    if clinical_report:
        from medseg.cli.report_commands import report_predictions

        report_predictions(report.outputs, inputs, predictor.model, output / "reports")
    if text is not None:
        from medseg.cli.text_commands import find_in_predictions

        find_in_predictions(report.outputs, inputs, model, text, output / "text")
    if not report.ok:
        # a MedsegError (not typer.Exit) so that the console entry point exits with code 1
        raise MedsegError(
            f"{len(report.failures)} case(s) failed: "
            + ", ".join(f.case_id for f in report.failures)
        )


def _slides_among(inputs: list[Path], *, ray: str | None, runtime: str) -> list[Path]:
    """The inputs that are whole-slide images (predicted tile by tile, not read whole)."""
    from medseg.errors import ConfigError
    from medseg.wsi.slide import looks_like_slide

    slides = [path for path in inputs if path.is_file() and looks_like_slide(path)]
    if slides and (ray is not None or runtime != "torch"):
        raise ConfigError(
            f"{slides[0]}: a whole-slide image; slides are predicted tile by tile with the torch "
            "runtime in this process: drop --ray / --runtime onnx for them"
        )
    return slides


def _predict_slides(
    model: Path, slides: list[Path], output: Path, *, device: str, folds: list[int] | None
) -> None:
    """Each slide to OUTPUT/<name>.tif: tissue-only, coarse-to-fine tiles, label pyramid."""
    from rich.console import Console

    from medseg.cli.wsi_commands import segment_slide_with_progress
    from medseg.errors import MedsegError

    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    output.mkdir(parents=True, exist_ok=True)
    failed = []
    for slide in slides:
        name = slide.name
        for suffix in (".ome.tiff", ".ome.tif", slide.suffix):
            name = name.removesuffix(suffix)
        try:
            report = segment_slide_with_progress(
                model, slide, output / f"{name}.tif", device=device, folds=folds
            )
        except MedsegError as error:
            err.print(f"[red]failed[/red] {name}: {error}", highlight=False)
            failed.append(name)
            continue
        out.print(
            f"{name}: {report.output}  (slide: {report.tiles_tissue} of {report.tiles_total} "
            f"tiles on tissue, {report.tiles_per_second:.1f} tiles/s)",
            highlight=False,
        )
    if failed:
        raise MedsegError(f"{len(failed)} slide(s) failed: {', '.join(failed)}")


def _predict_on_ray(model: Path, inputs: list[Path], output: Path, **options) -> None:
    """``medseg predict --ray``: :func:`medseg.scale.predict_with_ray` with a progress bar."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from medseg.errors import MedsegError
    from medseg.scale import predict_with_ray

    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    device, threads = options.pop("device"), options.pop("threads")
    gpus = 1.0 if device.startswith("cuda") else 0.0
    columns = (TextColumn("cases"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("cases", total=None)
        report = predict_with_ray(
            model,
            inputs,
            output,
            cpus_per_worker=threads,
            gpus_per_worker=gpus,
            device=None if device == "auto" else device,
            volumes_json=options.pop("volumes"),
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            **options,
        )
    for case in report.outputs:
        out.print(f"{case.case_id}: {case.labels_path}", highlight=False)
    for failure in report.failures:
        err.print(f"[red]failed[/red] {failure.case_id}: {failure.message}", highlight=False)
    err.print(
        f"{len(report.outputs)} case(s) written to {output}, {len(report.failures)} failed, "
        f"{len(report.skipped)} already done (manifest {report.manifest})"
    )
    if not report.ok:
        raise MedsegError(
            f"{len(report.failures)} case(s) failed: "
            + ", ".join(f.case_id for f in report.failures)
        )


def postprocess(
    model: Annotated[Path, typer.Argument(help="Trained model folder with splits_final.json.")],
    dataset: Annotated[Path, typer.Argument(help="The training dataset folder.")],
    predictions: Annotated[
        Path | None,
        typer.Option("--predictions", help="Saved CV predictions instead of predicting."),
    ] = None,
    fast: Annotated[bool, typer.Option("--fast", help="No mirroring for CV predictions.")] = False,
    device: Device = "auto",
    output: Annotated[
        Path | None,
        output_option(
            "Rules file to write (default: MODEL/postprocessing.json, which predict applies)."
        ),
    ] = None,
) -> None:
    """Choose post-processing by cross-validation Dice; writes MODEL/postprocessing.json."""
    from rich.console import Console
    from rich.progress import Progress

    from medseg.cli._postprocessing import describe_choice
    from medseg.data.discover import load_dataset
    from medseg.infer import determine_postprocessing

    err = Console(stderr=True, soft_wrap=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("validation cases", total=None)
        choice = determine_postprocessing(
            model,
            load_dataset(dataset),
            predictions_dir=predictions,
            device=device,
            tta=not fast,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            output=output,
        )
    lines = describe_choice(choice)
    for line in lines[:-1]:
        Console(soft_wrap=True).print(line)
    err.print(lines[-1])
