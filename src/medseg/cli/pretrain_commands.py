"""``medseg pretrain IMAGES -o ENCODER``: self-supervised pretraining for ``train --init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import Device, Threads, apply_threads, output_option, seed_option


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)


def pretrain(
    images: Annotated[
        list[Path], typer.Argument(help="Unlabelled image files or folders (no labels needed).")
    ],
    output: Annotated[Path, output_option("Weights to write (.safetensors; a .json beside it).")],
    plan: Annotated[
        Path,
        typer.Option(
            "--plan",
            help="plan.json of the segmentation model to fine-tune (medseg plan), so the "
            "weights fit its network.",
        ),
    ],
    config: Annotated[
        str | None, typer.Option("--config", help="Configuration: 3d or 2d (default: the plan's).")
    ] = None,
    iterations: Annotated[int, typer.Option(min=1, help="Optimisation steps.")] = 1000,
    seconds: Annotated[
        float | None, typer.Option(min=1.0, help="Stop after this many seconds of training.")
    ] = None,
    mask_ratio: Annotated[
        float, typer.Option(min=0.05, max=0.95, help="Fraction of blocks blanked.")
    ] = 0.6,
    encoder_only: Annotated[
        bool, typer.Option("--encoder-only", help="Save the encoder only (default: every layer).")
    ] = False,
    device: Device = "auto",
    seed: Annotated[int, seed_option("Seed of weights, patches and masks.")] = 0,
    threads: Threads = None,
) -> None:
    """Pretrain the plan's network by masked-image reconstruction on unlabelled images."""
    from rich.console import Console

    from medseg.plan import load_plan
    from medseg.pretrain import pretrain_encoder

    apply_threads(threads)
    console = Console(soft_wrap=True)
    result = pretrain_encoder(
        images,
        output,
        plan=load_plan(plan),
        configuration=config,
        iterations=iterations,
        time_budget_s=seconds,
        mask_ratio=mask_ratio,
        encoder_only=encoder_only,
        device=device,
        seed=seed,
    )
    first = sum(result.losses[:10]) / max(1, len(result.losses[:10]))
    last = sum(result.losses[-10:]) / max(1, len(result.losses[-10:]))
    console.print(
        f"wrote {result.path} ({result.tensors} tensors) after {result.iterations} iterations in "
        f"{result.seconds:.0f} s; masked L1 {first:.4f} -> {last:.4f}. Fine-tune with: medseg "
        f"train DATASET -o MODEL --plan {plan} --init {result.path}"
    )
