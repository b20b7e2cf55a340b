"""``medseg weak``: sparse, noisy and several-rater labels (docs/weak.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medseg.cli._options import Seed, labels_option, output_option, parse_labels

weak_app = typer.Typer(
    help="Imperfect labels: simulate scribbles/clicks, corrupt labels, raters and STAPLE.",
    no_args_is_help=True,
)

DatasetArg = Annotated[Path, typer.Argument(help="nnU-Net dataset folder.")]


def register(app: typer.Typer) -> None:
    app.add_typer(weak_app, name="weak")


@weak_app.command("sparse")
def sparse(
    dataset: DatasetArg,
    output: Annotated[Path, output_option("New dataset folder (absent or empty).")],
    kind: Annotated[
        str,
        typer.Option(help="scribbles, clicks, slices, or naive-scribbles (unmarked = background)."),
    ] = "scribbles",
    every: Annotated[int, typer.Option(min=1, help="Scribble / annotated slice step.")] = 5,
    labels: Annotated[
        str | None,
        labels_option("Classes marked by one short stroke per connected component (lesions)."),
    ] = None,
    stroke_length: Annotated[int, typer.Option(min=1, help="Voxels per lesion stroke.")] = 5,
    max_stroke: Annotated[
        int | None,
        typer.Option(min=1, help="Cut each region's scribble on a slice to this many voxels."),
    ] = None,
    seed: Seed = 0,
) -> None:
    """Write a copy of a labelled dataset with simulated sparse labels and an ignore label."""
    from medseg.data import load_dataset
    from medseg.errors import ConfigError
    from medseg.weak import SparseConfig, make_sparse_dataset

    if kind not in ("scribbles", "clicks", "slices", "naive-scribbles"):
        raise ConfigError(f"--kind {kind!r}: use scribbles, clicks, slices or naive-scribbles")
    loaded = load_dataset(dataset)
    strokes = _label_values(labels, loaded.labels.labels) if labels else ()
    config = SparseConfig(
        every=every, stroke_classes=strokes, stroke_length=stroke_length, max_stroke=max_stroke
    )
    path = make_sparse_dataset(loaded, output, kind=kind, config=config, seed=seed)  # type: ignore[arg-type]
    _report(path)


@weak_app.command("corrupt")
def corrupt(
    dataset: DatasetArg,
    output: Annotated[Path, output_option("New dataset folder (absent or empty).")],
    fraction: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction of cases corrupted.")
    ] = 0.3,
    drop: Annotated[float, typer.Option(min=0, max=1, help="P(component erased).")] = 0.2,
    flip: Annotated[float, typer.Option(min=0, max=1, help="P(component relabelled).")] = 0.1,
    radius: Annotated[int, typer.Option(min=0, help="Max erosion/dilation, voxels.")] = 2,
    shift: Annotated[int, typer.Option(min=0, help="Max translation per axis, voxels.")] = 2,
    seed: Seed = 0,
) -> None:
    """Write a copy of a dataset with a fraction of its labels corrupted (for benchmarks)."""
    from medseg.weak import CorruptionConfig, corrupt_dataset

    config = CorruptionConfig(
        case_fraction=fraction, drop_probability=drop, flip_probability=flip,
        max_radius=radius, max_shift=shift,
    )  # fmt: skip
    _report(corrupt_dataset(dataset, output, config=config, seed=seed))


@weak_app.command("simulate-raters")
def simulate(
    dataset: DatasetArg,
    output: Annotated[Path, output_option("New dataset folder (absent or empty).")],
    raters: Annotated[int, typer.Option(min=1, help="Raters per case.")] = 3,
    seed: Seed = 0,
) -> None:
    """Write labelsTr/<case>_rater<k> files: independently corrupted copies of each label."""
    from medseg.weak import simulate_raters

    _report(simulate_raters(dataset, output, raters=raters, seed=seed))


@weak_app.command("consensus")
def consensus(
    dataset: DatasetArg,
    output: Annotated[Path, output_option("New dataset folder (absent or empty).")],
) -> None:
    """Write a copy whose training label of each several-raters case is the STAPLE consensus."""
    from medseg.weak import consensus_dataset

    _report(consensus_dataset(dataset, output))


@weak_app.command("score-raters")
def score_raters(
    predictions: Annotated[Path, typer.Argument(help="Folder of predicted <case> label maps.")],
    dataset: DatasetArg,
    output: Annotated[Path, output_option("JSON file to write.")],
) -> None:
    """Score predictions against every rater: per-rater Dice, Dice to consensus, GED."""
    from rich.console import Console

    from medseg.weak import evaluate_against_raters

    result = evaluate_against_raters(predictions, dataset, output)
    mean = result["mean"]
    console = Console(soft_wrap=True)
    console.print(f"{len(result['cases'])} cases; written {output}")
    for key in ("mean_rater_dice", "consensus_dice"):
        console.print(f"{key}: " + ", ".join(f"{c} {v:.3f}" for c, v in mean[key].items()))
    console.print(f"GED^2 {mean['ged']:.3f} (rater disagreement {mean['rater_distance']:.3f})")
    if "calibration_error" in mean:
        errors = mean["calibration_error"].items()
        console.print("calibration error: " + ", ".join(f"{c} {v:.3f}" for c, v in errors))


@weak_app.command("boxes")
def boxes(
    dataset: DatasetArg,
    output: Annotated[Path, output_option("New dataset folder (absent or empty).")],
    box_file: Annotated[
        Path | None,
        typer.Option("--boxes", help="Box JSON file (default: boxes of the labels' components)."),
    ] = None,
    uncertain_as_ignore: Annotated[
        bool, typer.Option(help="Box voxels the engine leaves out become ignore, not background.")
    ] = False,
    painted: Annotated[
        bool,
        typer.Option(
            help="Write the boxes themselves, for training with --set training.loss=box_prior."
        ),
    ] = False,
) -> None:
    """Write a copy whose training labels are box pseudo-masks (classical random walker)."""
    from medseg.weak import boxes_dataset

    _report(
        boxes_dataset(
            dataset,
            output,
            boxes=box_file,
            uncertain_as_ignore=uncertain_as_ignore,
            painted=painted,
        )
    )


@weak_app.command("grow")
def grow(
    dataset: Annotated[Path, typer.Argument(help="Sparsely labelled dataset (with ignore).")],
    output: Annotated[Path, output_option("New dataset folder (absent or empty).")],
    confidence: Annotated[
        float,
        typer.Option(
            min=0.01, max=1.0, help="Probability a grown voxel needs; the rest stays ignore."
        ),
    ] = 0.8,
) -> None:
    """Write a copy whose sparse labels are grown by the random walker (uncertain: ignore)."""
    from medseg.weak import grown_dataset

    _report(grown_dataset(dataset, output, confidence=confidence))


@weak_app.command("check")
def check(dataset: DatasetArg) -> None:
    """Check weak labels: sparse values and coverage, partial-label declarations."""
    from rich.console import Console

    from medseg.data import load_dataset
    from medseg.weak import annotated_classes, sparse_coverage

    console = Console(soft_wrap=True)
    loaded = load_dataset(dataset)
    if loaded.labels.ignore is not None:
        coverage = sparse_coverage(loaded)
        console.print(f"sparse labels: {100 * coverage['mean']:.2f} % of voxels annotated")
    declared = annotated_classes(loaded)
    console.print(f"{len(declared)} partially labelled case(s) declared and consistent")
    raters = sum(1 for c in loaded.cases if c.rater_paths)
    console.print(f"{raters} case(s) with rater files")


def _label_values(text: str, names: dict[str, int]) -> tuple[int, ...]:
    from medseg.errors import ConfigError

    values = []
    for item in parse_labels(text):
        if isinstance(item, str) and item not in names:
            raise ConfigError(f"--labels: {item!r} is not a label name ({sorted(names)})")
        values.append(names[item] if isinstance(item, str) else item)
    return tuple(values)


def _report(path: Path) -> None:
    import json

    from rich.console import Console

    meta = json.loads((path / "dataset.json").read_text(encoding="utf-8"))
    weak = {k: v for k, v in meta.get("weak_labels", {}).items() if k != "cases"}
    console = Console(soft_wrap=True)
    console.print(f"wrote {path}: {json.dumps(weak)}")
    for name, reach in meta.get("every_object_marked", {}).items():
        console.print(
            f"every {name} object is marked: all its voxels lie within {reach:g} mm of a mark "
            "(every_object_marked; training adds the absence term)"
        )
