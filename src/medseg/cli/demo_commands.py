"""``medseg demo``: the whole pipeline on the built-in brain example."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import Device, output_option, seed_option


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    output: Annotated[Path, output_option("Folder to write everything to.")] = Path("medseg-demo"),
    cases: Annotated[int, typer.Option(help="Training cases to generate.")] = 16,
    test_cases: Annotated[int, typer.Option(help="Held-out cases to predict and score.")] = 4,
    seed: Annotated[int, seed_option("Seed of data generation and training.")] = 0,
    train_seconds: Annotated[
        float, typer.Option(help="CPU training time budget in seconds (the plan fits it).")
    ] = 420.0,
    device: Device = "auto",
) -> None:
    """Make the example data, train a small model, predict held-out cases, evaluate, summarise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from medseg.demo import STEPS, run_demo

    console = Console(stderr=True, soft_wrap=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("starting", total=None)
        state = {"step": 0}

        def on_step(name: str) -> None:
            state["step"] = STEPS.index(name) + 1
            progress.update(
                task, description=f"[{state['step']}/{len(STEPS)}] {name}", completed=0, total=None
            )
            if not console.is_terminal:
                console.print(f"[{state['step']}/{len(STEPS)}] {name}")

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = run_demo(
            output,
            cases=cases,
            test_cases=test_cases,
            seed=seed,
            train_seconds=train_seconds,
            device=device,
            on_step=on_step,
            on_progress=on_progress,
        )

    table = Table(title="Dice on held-out cases")
    classes = list(result.mean_dice)
    table.add_column("case")
    for name in classes:
        table.add_column(name, justify="right")
    for case, per_case in sorted(result.dice.items()):
        table.add_row(case, *(f"{per_case.get(c, float('nan')):.3f}" for c in classes))
    table.add_row("mean", *(f"{result.mean_dice[c]:.3f}" for c in classes), style="bold")
    out_console = Console(soft_wrap=True)
    out_console.print(table)
    timing = ", ".join(f"{name} {secs:.0f} s" for name, secs in result.seconds.items())
    out_console.print(f"time: {timing}")
    out_console.print(f"summary:     {result.summary_html}")
    out_console.print(f"evaluation:  {result.evaluation_dir}")
    out_console.print(f"model:       {result.model_dir}")
    out_console.print(f"predictions: {result.predictions_dir}")
    out_console.print(
        f"report:      {result.out_dir / 'report' / 'report.html'} (first held-out case)"
    )
