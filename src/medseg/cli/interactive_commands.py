"""``medseg train-interactive`` and ``medseg interactive-eval``: the interactive engines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import (
    AcceptWarnings,
    Device,
    Labels,
    Seed,
    Threads,
    apply_threads,
    labels_option,
    output_option,
    parse_labels,
    seed_option,
    workers_option,
)


def register(app: typer.Typer) -> None:
    app.command("train-interactive")(train_interactive)
    app.command("interactive-eval")(interactive_eval)
    app.command("train-universal")(train_universal)


def train_interactive(
    dataset: Annotated[Path, typer.Argument(help="Labelled dataset folder (nnU-Net raw, ...).")],
    output: Annotated[Path, output_option("Model folder to write.")],
    iterations: Annotated[int, typer.Option(help="Training iterations (batches).")] = 20000,
    batch_size: Annotated[int, typer.Option(help="Crops per batch.")] = 8,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-3,
    max_rounds: Annotated[int, typer.Option(help="Most simulated correction rounds.")] = 5,
    max_minutes: Annotated[float, typer.Option(help="Stop after this wall time.")] = 10.0,
    labels: Annotated[
        str | None, labels_option("Labels to train on: values or names, e.g. 1,3 (default: all).")
    ] = None,
    size: Annotated[int, typer.Option(help="Network input side in pixels.")] = 128,
    seed: Seed = 0,
    threads: Threads = None,
    accept_warnings: AcceptWarnings = False,
) -> None:
    """Train the promptable network with simulated users and write MODEL."""
    from rich.console import Console
    from rich.progress import Progress

    from medseg.cli._dataset_check import require_checked_dataset
    from medseg.data import load_dataset
    from medseg.interactive.network import InteractiveModelConfig
    from medseg.interactive.training import InteractiveTrainConfig
    from medseg.interactive.training import train_interactive as train
    from medseg.train.lock import lock_model_folder

    apply_threads(threads)
    data = load_dataset(dataset)
    require_checked_dataset(data, accept_warnings=accept_warnings)
    config = InteractiveTrainConfig(
        iterations=iterations,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_rounds=max_rounds,
        max_minutes=max_minutes,
        classes=_label_values(labels, data.labels.labels),
        seed=seed,
        model=InteractiveModelConfig(size=size),
    )
    console = Console(stderr=True, soft_wrap=True)
    with (
        lock_model_folder(output),
        Progress(console=console, disable=not console.is_terminal) as progress,
    ):
        task = progress.add_task("training", total=iterations)
        result = train(
            data,
            output,
            config=config,
            on_progress=lambda d, n: progress.update(task, completed=d, total=n),
        )
    tail = result.losses[-20:]
    Console(soft_wrap=True).print(
        f"{result.model_dir}: {len(result.losses)} iterations in {result.seconds:.0f} s, "
        f"final loss {sum(tail) / len(tail):.3f}"
    )


def interactive_eval(
    engine: Annotated[str, typer.Argument(help="'universal', 'classical' or a model folder.")],
    dataset: Annotated[Path, typer.Argument(help="Labelled dataset folder.")],
    protocol: Annotated[str, typer.Option(help="cvpr, clicks or scribbles.")] = "cvpr",
    labels: Labels = None,
    max_cases: Annotated[int | None, typer.Option(help="Evaluate only the first cases.")] = None,
    interactions: Annotated[
        int | None, typer.Option(help="Interactions per object (default 6 / 20 / 6).")
    ] = None,
    output: Annotated[Path | None, output_option("Folder for the CSV and JSON.")] = None,
    seed: Annotated[int, seed_option("Seed of the simulated user.")] = 0,
    threads: Threads = None,
) -> None:
    """Simulate users (CVPR 2025 protocol or a variant) and report Dice/NSD per interaction."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from medseg.data import load_dataset
    from medseg.errors import ConfigError
    from medseg.interactive import evaluate_interactive, load_engine

    if protocol not in ("cvpr", "clicks", "scribbles"):
        raise ConfigError(f"--protocol {protocol!r}: use cvpr, clicks or scribbles")
    apply_threads(threads)
    data = load_dataset(dataset)
    console = Console(stderr=True, soft_wrap=True)
    with Progress(console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("cases", total=max_cases or len(data.labelled))
        result = evaluate_interactive(
            load_engine(engine),
            data,
            protocol=protocol,  # type: ignore[arg-type]
            classes=parse_labels(labels) if labels else None,
            max_cases=max_cases,
            n_interactions=interactions,
            seed=seed,
            out_dir=output,
            on_progress=lambda d, n: progress.update(task, completed=d, total=n),
        )
    table = Table(title=f"{result.summary['engine']} - {protocol}")
    columns = ("n", "Dice 1st", "Dice last", "Dice AUC", "NSD AUC", "NoC85", "NoC90", "s/step")
    table.add_column("class", no_wrap=True)
    for column in columns:
        table.add_column(column, justify="right")
    for name, row in result.summary["classes"].items():
        table.add_row(
            name,
            str(row["n_objects"]),
            f"{row['dice_per_step'][0]:.3f}",
            f"{row['final_dice']:.3f}",
            f"{row['dice_auc']:.2f}",
            f"{row['nsd_auc']:.2f}",
            f"{row['noc85']:.1f}",
            f"{row['noc90']:.1f}",
            f"{row['mean_seconds']:.2f}",
        )
    Console(soft_wrap=True).print(table)


def train_universal(
    output: Annotated[Path, output_option("Run folder (resumed if it holds a run).")],
    hours: Annotated[
        float, typer.Option(help="Total training budget over all resumed runs.")
    ] = 2.0,
    iterations: Annotated[
        int | None, typer.Option(help="Also stop at this total iteration count.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Crops per batch.")] = 8,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-3,
    pool_size: Annotated[int, typer.Option(help="Generated tasks held in memory.")] = 48,
    checkpoint_minutes: Annotated[float, typer.Option(help="Minutes between checkpoints.")] = 5.0,
    device: Device = "cpu",
    seed: Annotated[int, seed_option("Seed of the task stream and of the run.")] = 0,
    threads: Threads = None,
    workers: Annotated[
        int | None,
        workers_option(
            "Processes generating tasks and batches (0: in this process; a GPU needs several)."
        ),
    ] = 0,
) -> None:
    """Train the universal promptable model on generated tasks; resumable from OUTPUT."""
    import json

    from rich.console import Console
    from rich.progress import Progress

    from medseg.interactive.universal import UniversalTrainConfig
    from medseg.interactive.universal import train_universal as train

    apply_threads(threads)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    config = UniversalTrainConfig(
        hours=hours,
        iterations=iterations,
        batch_size=batch_size,
        learning_rate=learning_rate,
        pool_size=pool_size,
        checkpoint_minutes=checkpoint_minutes,
        device=device,
        seed=seed,
        workers=workers or 0,
    )
    console = Console(stderr=True, soft_wrap=True)
    with Progress(console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("training", total=1.0)
        train(
            output,
            config=config,
            on_progress=lambda _it, fraction: progress.update(task, completed=fraction),
        )
    state = json.loads((output / "state.json").read_text())
    Console(soft_wrap=True).print(
        f"{output}: {state['iteration']} iterations, {state['seconds'] / 3600:.2f} h, "
        f"{state['next_task']} tasks generated; run again to continue"
    )


def _label_values(text: str | None, names: dict[str, int]) -> tuple[int, ...]:
    """``--labels`` as label values, names looked up in the dataset's labels."""
    from medseg.errors import ConfigError

    values = []
    for label in parse_labels(text) if text else []:
        if isinstance(label, str) and label not in names:
            raise ConfigError(f"--labels: no label named {label!r}; the dataset has {names}")
        values.append(names[label] if isinstance(label, str) else label)
    return tuple(values)
