"""``medseg find`` and ``medseg ground``: select what a phrase or a report's sentences name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from medseg.cli._options import output_option, parse_labels

DatasetJson = Annotated[
    Path | None, typer.Option("--dataset-json", help="dataset.json with the class names.")
]
ModelFolder = Annotated[
    Path | None, typer.Option("--model", help="Model folder (its dataset.json names the classes).")
]
LesionLabels = Annotated[
    str | None,
    typer.Option(
        "--lesion-labels", help="Lesion classes, e.g. lesion,tumour or 3 (default: by name)."
    ),
]
Prior = Annotated[
    tuple[Path, Path] | None,
    typer.Option("--prior", help="Prior image and its segmentation (for 'new' lesions)."),
]


def register(app: typer.Typer) -> None:
    app.command()(find)
    app.command()(ground)


def find(
    image: Annotated[Path, typer.Argument(help="The image (file or DICOM folder).")],
    segmentation: Annotated[Path, typer.Argument(help="Its label map, on the same voxel grid.")],
    phrase: Annotated[
        str, typer.Argument(help='What to select, e.g. "largest lesion on the left".')
    ],
    output: Annotated[Path, output_option("Folder for selection.nii.gz and selection.json.")],
    dataset_json: DatasetJson = None,
    model: ModelFolder = None,
    lesion_labels: LesionLabels = None,
    prior: Prior = None,
) -> None:
    """Write the voxels a phrase names as a mask, with a JSON explaining the match."""
    from rich.console import Console

    from medseg.text import find_files

    selection, paths = find_files(
        image,
        segmentation,
        phrase,
        output,
        label_names=_names(dataset_json, model),
        lesion_labels=parse_labels(lesion_labels) if lesion_labels else None,
        prior=prior,
    )
    out = Console(soft_wrap=True)
    explanation = selection.to_dict()
    for clause in explanation["clauses"]:
        chosen = ", ".join(_label(s) for s in clause["selected"]) or "nothing"
        out.print(f"{clause['reading']}: {chosen}", highlight=False)
    for note in explanation["notes"] + [n for c in explanation["clauses"] for n in c["notes"]]:
        out.print(f"note: {note}", highlight=False)
    for written, read in selection.query.corrections:
        out.print(f"read {written!r} as {read!r}", highlight=False)
    Console(stderr=True).print(
        f"{explanation['voxels']} voxels ({explanation['volume_ml']:.2f} ml); "
        f"wrote {paths['mask']} and {paths['json']}",
        highlight=False,
    )


def ground(
    report: Annotated[Path, typer.Argument(help="Report text file (UTF-8).")],
    image: Annotated[Path, typer.Argument(help="The image (file or DICOM folder).")],
    segmentation: Annotated[Path, typer.Argument(help="Its label map, on the same voxel grid.")],
    output: Annotated[Path, output_option("Folder for one mask per sentence and grounding.json.")],
    dataset_json: DatasetJson = None,
    model: ModelFolder = None,
    lesion_labels: LesionLabels = None,
    prior: Prior = None,
) -> None:
    """Resolve each sentence of a report to a mask; list the sentences it could not read."""
    from rich.console import Console

    from medseg.text import ground_files

    grounded, paths = ground_files(
        report,
        image,
        segmentation,
        output,
        label_names=_names(dataset_json, model),
        lesion_labels=parse_labels(lesion_labels) if lesion_labels else None,
        prior=prior,
    )
    out = Console(soft_wrap=True)
    for g in grounded:
        why = f" ({g.error.reason})" if g.error is not None else ""
        out.print(f"{g.index:2d} {g.status:16s} {g.sentence}{why}", highlight=False)
    resolved = sum(g.status == "resolved" for g in grounded)
    Console(stderr=True).print(
        f"{resolved} of {len(grounded)} sentences resolved; wrote {paths['json']}", highlight=False
    )


def find_in_predictions(
    outputs: list[Any], inputs: list[Path], model: Path, phrase: str, out_dir: Path
) -> None:
    """``medseg predict --text``: :func:`medseg.text.find_files` on each predicted case.

    ``outputs`` are the predictor's :class:`~medseg.infer.files.CaseOutput` records; the class
    names come from the model folder. A phrase that does not resolve on one case is reported
    for that case; the others are still written.
    """
    from rich.console import Console

    from medseg.infer.inputs import find_inputs
    from medseg.text import QueryError, find_files

    paths = {case.case_id: case.paths for case in find_inputs(inputs)}
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    for case in outputs:
        try:
            selection, written = find_files(
                paths[case.case_id][0],
                case.labels_path,
                phrase,
                out_dir / case.case_id,
                label_names=model,
            )
        except QueryError as error:
            err.print(f"[red]text[/red] {case.case_id}: {error}", highlight=False)
            continue
        chosen = ", ".join(_label(describe) for describe in _selected(selection.to_dict()))
        out.print(f"{case.case_id}: {chosen or 'nothing'} -> {written['mask']}", highlight=False)


def _selected(explanation: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for c in explanation["clauses"] if not c["context_only"] for s in c["selected"]]


def _names(dataset_json: Path | None, model: Path | None) -> Path | None:
    from medseg.errors import ConfigError

    if dataset_json is not None and model is not None:
        raise ConfigError("give --dataset-json or --model, not both (both name the classes)")
    return dataset_json or model


def _label(selected: dict[str, object]) -> str:
    if selected["kind"] == "lesion":
        return f"lesion {selected['lesion_id']} ({float(selected['volume_ml']):.2f} ml)"  # type: ignore[arg-type]
    return f"{selected['class']} ({selected['part']})"
