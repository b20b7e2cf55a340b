"""``medseg serve``: the browser viewer and HTTP API for interactive correction."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import Threads, apply_threads, output_option

EXAMPLE_DIR = Path("medseg-example")


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Folder of images or nnU-Net dataset (with --example: where to build it)."
        ),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Trained model folder: starting masks and uncertainty.")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(help="Interactive engine: universal (shipped), classical or a model folder."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind (0.0.0.0 needs a token).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(help="Token every request must carry; generated for a non-local host."),
    ] = None,
    output: Annotated[
        Path | None, output_option("Folder for corrected masks (default DATA/labelsCorrected).")
    ] = None,
    next_order: Annotated[
        str, typer.Option("--next", help="Next-case order: uncertainty, first or random.")
    ] = "uncertainty",
    max_sessions: Annotated[int, typer.Option(min=1, help="Open sessions at most.")] = 8,
    reference: Annotated[
        bool,
        typer.Option(help="Start from the dataset's own label files when there is no model."),
    ] = True,
    example: Annotated[
        bool, typer.Option("--example", help="Build the built-in brain example and serve it.")
    ] = False,
    threads: Threads = None,
) -> None:
    """Serve a page to review and correct segmentations with clicks, boxes and scribbles."""
    import uvicorn
    from rich.console import Console

    from medseg.errors import ConfigError
    from medseg.server import ServeConfig, create_app
    from medseg.server.config import LOOPBACK_HOSTS

    console = Console(stderr=True, soft_wrap=True)
    if example:
        data = data or EXAMPLE_DIR
        if not (data / "dataset.json").is_file():
            from medseg.data.example import make_brain_example

            console.print(f"building the brain example in {data} ...")
            make_brain_example(data, cases=4, seed=0)
        reference = False
    if data is None:
        raise ConfigError("give a DATA folder, or --example to serve the built-in example")
    if host not in LOOPBACK_HOSTS and token is None:
        token = secrets.token_urlsafe(24)
    apply_threads(threads)
    config = ServeConfig(
        data=data,
        model=model,
        engine=engine,
        output=output,
        token=token,
        next_order=next_order,  # type: ignore[arg-type]
        max_sessions=max_sessions,
        reference_start=reference,
    )
    app = create_app(config)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"medseg serve: {data} -> {config.output_dir}")
    Console(soft_wrap=True).print(f"open {url}")
    uvicorn.run(app, host=host, port=port, log_level="warning")
