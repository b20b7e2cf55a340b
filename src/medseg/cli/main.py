"""The ``medseg`` command line: a thin Typer layer over the Python API.

Each command lives in a module of this package that exposes ``register(app)``. Commands import
heavy libraries inside their body so that ``medseg --help`` stays fast. A :class:`MedsegError`
raised anywhere becomes one line on stderr and exit code 1, a usage error one line and exit code
2: no traceback for user error, whichever Typer release is installed.
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
    "medseg.cli.pretrain_commands",
    "medseg.cli.predict_commands",
    "medseg.cli.report_commands",
    "medseg.cli.text_commands",
    "medseg.cli.wsi_commands",
    "medseg.cli.export_commands",
    "medseg.cli.serve_commands",
    "medseg.cli.weak_commands",
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


def _usage_error_type() -> type[Exception]:
    """The base class of the command-line parser's errors, whichever Typer release is installed.

    Typer up to 0.25 parses with click (``click.ClickException``); from 0.26 it carries its own
    copy of click's parser (``typer._click``) and no longer depends on click. ``typer.BadParameter``
    exists in both and derives from the parser's ``ClickException``, so it finds the right class
    without importing click.
    """
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == "ClickException":
            return cls
    raise RuntimeError("typer.BadParameter does not derive from a ClickException")  # unreachable


_UsageError = _usage_error_type()


def _one_line(err: Exception) -> str:
    """A parser error as one line: the command, the problem, where help is."""
    message = " ".join(err.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(err, "ctx", None)
    if ctx is None:
        return f"error: {message}"
    return f"error: {ctx.command_path}: {message} (see '{ctx.command_path} --help')"


def app() -> None:
    """Console entry point: errors become one line on stderr, never a traceback.

    Exit codes: 1 for a :class:`MedsegError` (bad input or configuration) or an operating-system
    error (a full disk, a folder without write permission), 2 for a usage error (unknown option,
    missing argument, bad option value: Typer's convention), 130 when aborted.
    """
    try:
        code = app_typer(standalone_mode=False)
    except MedsegError as err:
        typer.secho(f"error: {' '.join(str(err).split())}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except BrokenPipeError:  # output piped into a reader that stopped (e.g. `| head`)
        sys.exit(1)
    except OSError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except _UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # a group called without a command
            err.show()  # type: ignore[attr-defined]
        else:
            typer.secho(_one_line(err), fg=typer.colors.RED, err=True)
        sys.exit(getattr(err, "exit_code", 2))
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
