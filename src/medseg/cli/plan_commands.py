"""``medseg plan`` and ``medseg preprocess``: fingerprint + planning, and the preprocessed cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import AcceptWarnings, device_option, output_option, workers_option


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command()(preprocess)


def _ints(text: str) -> list[int]:
    from medseg.errors import ConfigError

    try:
        return [int(v) for v in text.split(",")]
    except ValueError as err:
        raise ConfigError(f"--patch {text!r}: expected integers like 64,64,64") from err


def plan(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (nnU-Net raw, paired, CSV).")],
    output: Annotated[
        Path | None, output_option("Write the plan to this JSON file (fingerprint beside it).")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="Configuration the options below edit (and the default): 3d, 2d, 2.5d, "
            "3d_lowres, 3d_cascade_fullres...",
        ),
    ] = None,
    patch: Annotated[
        str | None, typer.Option("--patch", help="Patch size in voxels, e.g. 64,64,64.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    device: Annotated[str, device_option("Plan for: auto (this machine), cpu or cuda.")] = "auto",
    time_budget: Annotated[
        float, typer.Option("--time-budget", help="CPU: seconds of training per fold.")
    ] = 600.0,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override any field: KEY=VALUE, e.g. training.learning_rate=0.001."
        ),
    ] = None,
    cascade: Annotated[
        bool | None,
        typer.Option(
            "--cascade/--no-cascade",
            help="Plan 3d_lowres + 3d_cascade_fullres always / never (default: when the image "
            "is far larger than the patch).",
        ),
    ] = None,
    accept_warnings: AcceptWarnings = False,
) -> None:
    """Fingerprint a dataset and plan preprocessing, network and training for it."""
    from rich.console import Console

    from medseg.cli._dataset_check import require_checked_dataset
    from medseg.data import load_dataset
    from medseg.plan import (
        PlanBudget,
        extract_fingerprint,
        load_or_extract_fingerprint,
        make_plan,
        parse_assignment,
        save_plan,
    )
    from medseg.plan.summary import plan_summary

    data = load_dataset(dataset)
    require_checked_dataset(data, accept_warnings=accept_warnings)
    if output is not None:
        fingerprint_path = output.parent / "fingerprint.json"
        fingerprint = load_or_extract_fingerprint(data, fingerprint_path)
    else:
        fingerprint = extract_fingerprint(data)
    name = config or ("3d" if fingerprint.ndim == 3 else "2d")
    overrides = dict(parse_assignment(text) for text in set_ or [])
    if patch is not None:
        overrides[f"{name}.patch_size"] = _ints(patch)
    if batch_size is not None:
        overrides[f"{name}.batch_size"] = batch_size
    if epochs is not None:
        overrides[f"{name}.training.epochs"] = epochs
    if config is not None:
        overrides["default_configuration"] = config
    if config in ("3d_lowres", "3d_cascade_fullres") and cascade is None:
        cascade = True
    budget = PlanBudget.for_device(device, time_budget_s=time_budget)  # type: ignore[arg-type]
    result = make_plan(fingerprint, budget=budget, overrides=overrides, cascade=cascade)
    Console(soft_wrap=True).print(plan_summary(result))
    if output is not None:
        save_plan(result, output)
        Console(stderr=True, soft_wrap=True).print(
            f"wrote {output} (fingerprint: {fingerprint_path})"
        )


def preprocess(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder.")],
    plan_file: Annotated[Path, typer.Option("--plan", help="plan.json from medseg plan.")],
    output: Annotated[Path, output_option("Cache folder to write.")],
    config: Annotated[
        str | None, typer.Option("--config", help="3d, 2d, 2.5d... (default: the plan's).")
    ] = None,
    workers: Annotated[
        int | None, workers_option("Processes (0: none, work here; default: cores - 1).")
    ] = None,
) -> None:
    """Crop, normalise and resample every training case into a memory-mappable cache."""
    from rich.console import Console
    from rich.progress import Progress

    from medseg.data import load_dataset
    from medseg.plan import load_plan
    from medseg.preprocess import preprocess_dataset

    data = load_dataset(dataset)
    plan_ = load_plan(plan_file)
    console = Console(stderr=True, soft_wrap=True)
    with Progress(console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("preprocessing", total=None)
        cache = preprocess_dataset(
            data,
            plan_,
            config,
            output,
            workers=None if workers is None else max(workers, 1),
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    Console(soft_wrap=True).print(f"{len(cache.case_ids)} cases in {cache.directory}")
