"""The ``medseg`` command line: a thin Typer layer over the Python API.

Each command lives in a module of this package that exposes ``register(app)``. Commands import
heavy libraries inside their body so that ``medseg --help`` stays fast. A :class:`MedsegError`
raised anywhere becomes one line on stderr and exit code 1: no traceback for user error.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from medseg import __version__
from medseg.errors import MedsegError

COMMAND_MODULES = (
    "medseg.cli.demo_commands",
    "medseg.cli.plan_commands",
    "medseg.cli.io_commands",
    "medseg.cli.data_commands",
    "medseg.cli.evaluate_commands",
    "medseg.cli.interactive_commands",
    "medseg.cli.train_commands",
    "medseg.cli.predict_commands",
    "medseg.cli.serve_commands",
)

app_typer = typer.Typer(
    name="medseg",
    help="Medical image segmentation: train, predict, evaluate, segment interactively.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"medseg {__version__}")
        raise typer.Exit()


@app_typer.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """medseg: self-configuring medical image segmentation, CPU first."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app_typer)


def app() -> None:
    """Console entry point: run the Typer app, turning :class:`MedsegError` into one line."""
    try:
        code = app_typer(standalone_mode=False)
    except MedsegError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except Exception as err:  # click usage errors
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)
