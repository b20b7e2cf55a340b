"""``medseg train DATASET -o MODEL``: plan, preprocess and train folds into a model folder."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import (
    AcceptWarnings,
    Device,
    Folds,
    Threads,
    apply_threads,
    output_option,
    parse_folds,
    seed_option,
    workers_option,
)


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    dataset: Annotated[
        Path, typer.Argument(help="nnU-Net dataset folder, images/+masks/ folder or CSV manifest.")
    ],
    output: Annotated[Path, output_option("Model folder to write (or resume).")],
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Configuration: 3d, 2d, 2.5d, 2.5d_plane1, 2.5d_plane2, 3d_lowres, "
            "3d_cascade_fullres (with --previous-stage), or the ensemble multiplane (the three "
            "planes' 2.5D networks, averaged; docs/methods.md). Default: the plan's.",
        ),
    ] = None,
    folds: Folds = "0",
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Override the plan's training.epochs.")
    ] = None,
    device: Device = "auto",
    plan: Annotated[Path | None, typer.Option(help="Use this (edited) plan.json.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a plan field: KEY=VALUE, e.g. training.epochs=20."),
    ] = None,
    seed: Annotated[int | None, seed_option("Training seed (default: the plan's).")] = None,
    workers: Annotated[
        int | None, workers_option("Augmentation worker processes (0: none, augment here).")
    ] = None,
    threads: Threads = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore checkpoints and finished folds.")
    ] = False,
    accept_warnings: AcceptWarnings = False,
    postprocess: Annotated[
        bool,
        typer.Option(
            "--postprocess/--no-postprocess",
            help="After training, choose post-processing (largest component, hole filling, "
            "minimum lesion size) on the folds' validation predictions and write "
            "MODEL/postprocessing.json, which predict applies (docs/predict.md).",
        ),
    ] = True,
    ddp: Annotated[
        bool,
        typer.Option("--ddp", help="Data-parallel: one rank of a torchrun job (docs/scale.md)."),
    ] = False,
    init: Annotated[
        Path | None,
        typer.Option(
            "--init",
            help="Fine-tune from these weights: a model folder, a fold folder or a .safetensors "
            "file (e.g. from medseg pretrain); matching tensors are loaded (docs/methods.md).",
        ),
    ] = None,
    previous_stage: Annotated[
        Path | None,
        typer.Option(
            "--previous-stage",
            help="For --config 3d_cascade_fullres: the trained 3d_lowres model folder whose "
            "segmentation feeds this stage (docs/methods.md, Cascade).",
        ),
    ] = None,
    correct_labels: Annotated[
        float | None,
        typer.Option(
            "--correct-labels",
            min=0.0,
            max=1.0,
            help="Noisy labels: after this fraction of training, relabel voxels the network "
            "confidently contradicts (docs/weak.md). Off by default.",
        ),
    ] = None,
    unlabelled: Annotated[
        Path | None,
        typer.Option(
            "--unlabelled",
            help="Folder of images without labels ({case}_0000 naming, as imagesTr): train "
            "semi-supervised with a mean teacher (docs/weak.md).",
        ),
    ] = None,
    classify: Annotated[
        str | None,
        typer.Option(
            "--classify",
            metavar="FIELD",
            help="Also train a case-level classifier of this case-table column on the "
            "encoder's features (docs/methods.md, Case-level classification).",
        ),
    ] = None,
    metadata: Annotated[
        str | None,
        typer.Option(
            "--metadata",
            metavar="F1,F2",
            help="Case-table columns fed to the classifier with the image features; NAME:num "
            "or NAME:cat sets the kind (default: numeric when every value is a number).",
        ),
    ] = None,
    case_table: Annotated[
        Path | None,
        typer.Option(
            "--case-table",
            help="CSV with a 'case' column and per-case fields (default: DATASET/cases.csv).",
        ),
    ] = None,
) -> None:
    """Train a segmentation model; resumes an interrupted run in the same folder."""
    import os

    from rich.console import Console

    from medseg.cli._dataset_check import require_checked_dataset
    from medseg.data import load_dataset
    from medseg.plan import parse_assignment
    from medseg.train import train_model

    extra: dict = {}
    if unlabelled is not None:
        extra["unlabelled"] = unlabelled
    if previous_stage is not None:
        extra["previous_stage"] = previous_stage
    if classify is not None or metadata is not None:
        extra["classify"] = classify
        extra["metadata"] = [f.strip() for f in (metadata or "").split(",") if f.strip()]
    if case_table is not None:
        extra["case_table"] = case_table
    if correct_labels is not None:
        from medseg.errors import ConfigError
        from medseg.weak.correction import correction_wrapper

        if ddp:
            raise ConfigError("--correct-labels is not available with --ddp")
        extra["wrap_loss"] = correction_wrapper(start_fraction=correct_labels)
    if ddp:
        from medseg.scale.ddp import require_torchrun
        from medseg.scale.ddp import train_model_ddp as train_model

        require_torchrun()
    apply_threads(threads)
    require_checked_dataset(load_dataset(dataset), accept_warnings=accept_warnings)
    quiet = ddp and os.environ.get("RANK", "0") != "0"  # rank 0 alone reports
    console = Console(soft_wrap=True, quiet=quiet)
    err_console = Console(stderr=True, soft_wrap=True, quiet=quiet)
    overrides = dict(parse_assignment(text) for text in set_ or [])

    def on_epoch(row: dict) -> None:
        err_console.print(describe_epoch(row))

    with _model_folder_lock(output, err_console), _progress(err_console) as on_progress:
        result = train_model(
            dataset,
            output,
            configuration=config,
            folds=parse_folds(folds),
            epochs=epochs,
            device=device,
            plan=plan,
            overrides=overrides,
            seed=seed,
            num_workers=workers,
            resume=not restart,
            init=init,
            on_progress=on_progress,
            on_epoch=on_epoch,
            **extra,
        )
    console.print(f"model written to {result.model_dir} (configuration {result.configuration})")
    for fold in result.folds:
        dice = ", ".join(f"{name} {_fmt(v)}" for name, v in fold.val_dice.items())
        console.print(f"fold {fold.fold}: validation Dice {dice}; mean {_fmt(fold.mean_dice)}")
    if result.cv_metrics:
        console.print(f"cross-validation mean Dice {_fmt(result.cv_metrics['mean_dice'])}")
    if postprocess and not quiet:
        from medseg.cli._postprocessing import describe_choice
        from medseg.infer import postprocessing_from_training

        choice = postprocessing_from_training(result.model_dir)
        for line in [] if choice is None else describe_choice(choice):
            err_console.print(line)


def _fmt(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


@contextmanager
def _model_folder_lock(output: Path, console) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Hold the model folder's lock (see :mod:`medseg.train.lock`); report a stale one taken over.

    Under ``torchrun`` (``RANK`` set) only rank 0 takes the lock: the other ranks are the same
    training.
    """
    if os.environ.get("RANK", "0") != "0":
        yield
        return
    from medseg.train.lock import lock_model_folder

    with lock_model_folder(output) as held:
        if held.taken_over is not None:
            console.print(
                f"[yellow]note:[/yellow] {output}: took over the lock of a training that is no "
                f"longer running ({held.taken_over.describe()})"
            )
        yield


@contextmanager
def _progress(console) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar over training iterations on a terminal; ``None`` otherwise."""
    if not console.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress("training", *columns, console=console, transient=True) as progress:
        task = progress.add_task("training", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def describe_epoch(row: dict) -> str:
    """One progress line for a training log row; values that were not measured are left out.

    A time-budgeted run validates only now and then (no patch validation loss), and its last
    round may be a validation alone (no training loss): printing those as ``nan`` alarms users.
    """
    parts = [
        f"{name} {row[key]:.4f}"
        for key, name in (("train_loss", "loss"), ("val_loss", "val loss"))
        if math.isfinite(float(row.get(key, math.nan)))
    ]
    dice = [
        f"{k[5:]} {v:.3f}" for k, v in row.items() if k.startswith("dice_") and math.isfinite(v)
    ]
    if dice:
        parts.append("Dice " + " ".join(dice))
    measured = ", ".join(parts) if parts else "no step"
    return f"fold {row['fold']} epoch {row['epoch']}: {measured} ({row['epoch_s']:.1f} s)"
