"""``medseg train-interactive`` and ``medseg interactive-eval``: the interactive engines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("train-interactive")(train_interactive)
    app.command("interactive-eval")(interactive_eval)
    app.command("train-universal")(train_universal)


def _threads(threads: int | None) -> None:
    """Cap torch and BLAS threads: on a shared CPU oversubscribed threads spin and stall."""
    if threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(limits=threads)


def train_interactive(
    dataset: Annotated[Path, typer.Argument(help="Labelled dataset folder (nnU-Net raw, ...).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model folder to write.")],
    iterations: Annotated[int, typer.Option(help="Training iterations (batches).")] = 20000,
    batch_size: Annotated[int, typer.Option(help="Crops per batch.")] = 8,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-3,
    max_rounds: Annotated[int, typer.Option(help="Most simulated correction rounds.")] = 5,
    max_minutes: Annotated[float, typer.Option(help="Stop after this wall time.")] = 10.0,
    classes: Annotated[
        list[int] | None, typer.Option("--class", help="Label value to train on (repeatable).")
    ] = None,
    size: Annotated[int, typer.Option(help="Network input side in pixels.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    threads: Annotated[int | None, typer.Option(help="Torch and BLAS CPU threads.")] = None,
) -> None:
    """Train the promptable network with simulated users and write MODEL."""
    from rich.console import Console
    from rich.progress import Progress

    from medseg.data import load_dataset
    from medseg.interactive.network import InteractiveModelConfig
    from medseg.interactive.training import InteractiveTrainConfig
    from medseg.interactive.training import train_interactive as train

    _threads(threads)
    config = InteractiveTrainConfig(
        iterations=iterations,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_rounds=max_rounds,
        max_minutes=max_minutes,
        classes=tuple(classes or ()),
        seed=seed,
        model=InteractiveModelConfig(size=size),
    )
    data = load_dataset(dataset)
    console = Console(stderr=True, soft_wrap=True)
    with Progress(console=console, disable=not console.is_terminal) as progress:
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
    classes: Annotated[
        list[str] | None, typer.Option("--class", help="Label value or name (repeatable).")
    ] = None,
    max_cases: Annotated[int | None, typer.Option(help="Evaluate only the first cases.")] = None,
    interactions: Annotated[
        int | None, typer.Option(help="Interactions per object (default 6 / 20 / 6).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Folder for the CSV and JSON.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated user.")] = 0,
    threads: Annotated[int | None, typer.Option(help="Torch and BLAS CPU threads.")] = None,
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
    _threads(threads)
    data = load_dataset(dataset)
    console = Console(stderr=True, soft_wrap=True)
    with Progress(console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("cases", total=max_cases or len(data.labelled))
        result = evaluate_interactive(
            load_engine(engine),
            data,
            protocol=protocol,  # type: ignore[arg-type]
            classes=classes,
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
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Run folder (resumed if it exists).")
    ],
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
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of the task stream and the run.")] = 0,
    threads: Annotated[int | None, typer.Option(help="Torch and BLAS CPU threads.")] = None,
) -> None:
    """Train the universal promptable model on generated tasks; resumable from OUTPUT."""
    import json

    from rich.console import Console
    from rich.progress import Progress

    from medseg.interactive.universal import UniversalTrainConfig
    from medseg.interactive.universal import train_universal as train

    _threads(threads)
    config = UniversalTrainConfig(
        hours=hours,
        iterations=iterations,
        batch_size=batch_size,
        learning_rate=learning_rate,
        pool_size=pool_size,
        checkpoint_minutes=checkpoint_minutes,
        device=device,
        seed=seed,
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
