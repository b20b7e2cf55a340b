"""Options shared by the ``medseg`` commands, defined once so that they mean the same everywhere.

Every command that writes takes ``-o/--output``; ``--device``, ``--folds``, ``--workers``,
``--threads``, ``--seed`` and ``--labels`` have one spelling, one syntax and one validation.
Use the ``Annotated`` aliases in a command's signature::

    def my_command(
        dataset: Annotated[Path, typer.Argument(help="Dataset folder.")],
        output: Annotated[Path, output_option("Folder to write.")],
        device: Device = "auto",
        seed: Seed = 0,
    ) -> None: ...

The option factories (``output_option``, ``seed_option``, ...) take a command-specific help
text where the default one does not say enough. Bad values are usage errors (exit code 2), like
a mistyped option name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

__all__ = [
    "AcceptWarnings",
    "Device",
    "Folds",
    "Labels",
    "OutputFolder",
    "Seed",
    "Threads",
    "Workers",
    "apply_threads",
    "device_option",
    "folds_option",
    "labels_option",
    "output_option",
    "parse_folds",
    "parse_labels",
    "seed_option",
    "threads_option",
    "workers_option",
]

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_FOLDS = re.compile(r"^(all|\d+(,\d+)*)$")


def output_option(text: str = "Folder to write.") -> Any:
    """``-o/--output``: where a command writes (a folder, or a file where the help says so)."""
    return typer.Option("-o", "--output", help=text)


def _check_device(value: str | None) -> str | None:
    if value is not None and not _DEVICE.match(value):
        raise typer.BadParameter(f"{value!r}: use auto, cpu, cuda, cuda:N or mps")
    return value


def device_option(
    text: str = "auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda, cuda:N or mps.",
) -> Any:
    """``--device``: where torch runs."""
    return typer.Option("--device", callback=_check_device, help=text)


def _check_folds(value: str | None) -> str | None:
    if value is not None and not _FOLDS.match(value.replace(" ", "")):
        raise typer.BadParameter(f"{value!r}: use comma-separated fold numbers (0,1,2) or 'all'")
    return value


def folds_option(text: str = "Folds: comma-separated numbers (0,1,2) or 'all'.") -> Any:
    """``--folds``: cross-validation folds, ``0,1,2`` or ``all``."""
    return typer.Option("--folds", callback=_check_folds, help=text)


def parse_folds(text: str) -> list[int] | Literal["all"]:
    """``"0,1"`` -> ``[0, 1]``; ``"all"`` -> ``"all"`` (the text was checked by ``--folds``)."""
    text = text.replace(" ", "")
    if text == "all":
        return "all"
    return [int(part) for part in text.split(",") if part]


def workers_option(
    text: str = "Worker processes (0: none, work in this process).",
) -> Any:
    """``--workers``: how many worker processes a command starts."""
    return typer.Option("--workers", min=0, help=text)


def threads_option(
    text: str = "Torch and BLAS CPU threads (default: torch's choice, one per core).",
) -> Any:
    """``--threads``: CPU threads of torch and the BLAS libraries in this process."""
    return typer.Option("--threads", min=1, help=text)


def apply_threads(threads: int | None) -> None:
    """Cap torch and BLAS threads: on a shared CPU oversubscribed threads spin and stall."""
    if threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(threads)
        threadpool_limits(limits=threads)


def seed_option(text: str = "Random seed: the same seed gives the same result.") -> Any:
    """``--seed``: the random seed."""
    return typer.Option("--seed", min=0, help=text)


def _check_labels(value: str | None) -> str | None:
    if value is not None and not parse_labels(value):
        raise typer.BadParameter(f"{value!r}: give label values or names, e.g. 1,2 or liver,tumour")
    return value


def labels_option(
    text: str = "Labels: comma-separated values or dataset.json names, e.g. 1,2 or liver,tumour.",
) -> Any:
    """``--labels``: which labels a command works on."""
    return typer.Option("--labels", callback=_check_labels, help=text)


def parse_labels(text: str) -> list[int | str]:
    """``"1,tumour"`` -> ``[1, "tumour"]``: integers as label values, anything else as a name."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return [int(part) if re.fullmatch(r"-?\d+", part) else part for part in parts]


AcceptWarnings = Annotated[
    bool,
    typer.Option(
        "--accept-warnings",
        help="Go on when the dataset check finds warnings only (errors always stop).",
    ),
]
OutputFolder = Annotated[Path, output_option()]
Device = Annotated[str, device_option()]
Folds = Annotated[str, folds_option()]
Workers = Annotated[int | None, workers_option()]
Threads = Annotated[int | None, threads_option()]
Seed = Annotated[int, seed_option()]
Labels = Annotated[str | None, labels_option()]
