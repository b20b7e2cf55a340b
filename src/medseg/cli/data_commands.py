"""``medseg check`` and ``medseg example brain|brain2d``: dataset validation and example data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import output_option, seed_option

example_app = typer.Typer(
    help="Write a built-in example dataset (nnU-Net format, made from the MNI template).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    example_app.command("brain")(example_brain)
    example_app.command("brain2d")(example_brain2d)
    app.add_typer(example_app, name="example")


def check(
    dataset: Annotated[
        Path, typer.Argument(help="nnU-Net dataset folder, images/+masks/ folder or CSV manifest.")
    ],
    atol: Annotated[
        float, typer.Option(help="Geometry tolerance: mm for spacing/origin, unitless direction.")
    ] = 1e-3,
) -> None:
    """Validate a dataset: list every problem with its case; exit 1 if there are errors."""
    from rich.console import Console

    from medseg.data import check_dataset, load_dataset

    console = Console(soft_wrap=True)
    loaded = load_dataset(dataset)
    with _progress(console, f"checking {loaded.name}") as on_progress:
        report = check_dataset(loaded, geometry_atol=atol, on_progress=on_progress)
    if report.problems:
        console.print(report.table())
    console.print(report.summary())
    if not report.ok:
        raise typer.Exit(code=1)


def example_brain(
    output: Annotated[Path, output_option("Dataset folder to create.")] = Path(
        "Dataset001_BrainExample"
    ),
    cases: Annotated[int, typer.Option(min=1, help="Training cases.")] = 20,
    seed: Annotated[int, seed_option("Random seed: the same seed gives the same files.")] = 0,
    spacing: Annotated[float, typer.Option(min=0.5, help="Isotropic voxel size in mm.")] = 2.0,
    test_cases: Annotated[int, typer.Option(min=0, help="Extra cases in imagesTs/.")] = 0,
) -> None:
    """3D T1 brains with grey matter, white matter and lesion labels."""
    from medseg.data.example import make_brain_example

    _make(
        make_brain_example, output, cases=cases, seed=seed, spacing=spacing, test_cases=test_cases
    )


def example_brain2d(
    output: Annotated[Path, output_option("Dataset folder to create.")] = Path(
        "Dataset002_Brain2D"
    ),
    cases: Annotated[int, typer.Option(min=1, help="Training cases (one axial slice each).")] = 20,
    seed: Annotated[int, seed_option("Random seed: the same seed gives the same files.")] = 0,
    spacing: Annotated[float, typer.Option(min=0.5, help="In-plane voxel size in mm.")] = 1.0,
    test_cases: Annotated[int, typer.Option(min=0, help="Extra cases in imagesTs/.")] = 0,
) -> None:
    """2D axial T1 slices (2D NIfTI) with the same labels."""
    from medseg.data.example import make_brain2d_example

    _make(
        make_brain2d_example, output, cases=cases, seed=seed, spacing=spacing, test_cases=test_cases
    )


def _make(
    make: Callable[..., Path], out: Path, *, cases: int, seed: int, spacing: float, test_cases: int
) -> None:
    from rich.console import Console

    from medseg.data import load_dataset

    console = Console(soft_wrap=True)
    with _progress(console, "writing cases") as on_progress:
        path = make(
            out,
            cases=cases,
            seed=seed,
            spacing_mm=spacing,
            test_cases=test_cases,
            on_progress=on_progress,
        )
    dataset = load_dataset(path)
    labels = ", ".join(f"{v} {n}" for n, v in dataset.labels.labels.items())
    console.print(f"wrote {path}")
    console.print(
        f"{len(dataset.cases)} training and {len(dataset.test_cases)} test cases, "
        f"{spacing:g} mm, seed {seed}; labels: {labels}"
    )


@contextmanager
def _progress(console, description: str) -> Iterator[Callable[[int, int], None] | None]:  # type: ignore[no-untyped-def]
    """A Rich progress bar callback on a terminal, ``None`` otherwise."""
    if not console.is_terminal:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
