"""Public functions: :func:`find` (one phrase) and :func:`ground` (a report's sentences).

Both take images already read; :func:`find_files` and :func:`ground_files` read the files named
on the command line and write a mask per selection (the segmentation's geometry) with a JSON
that explains it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg._atomic import write_text_atomic
from medseg._typing import PathLikeStr
from medseg.errors import ImageWriteError
from medseg.io import Image, read_image, write_image
from medseg.report.findings import PriorScan, require_same_grid
from medseg.report.inputs import LabelInfo, default_names, read_label_info
from medseg.text.parse import parse
from medseg.text.query import QueryError
from medseg.text.resolve import Selection, resolve
from medseg.text.scene import Scene, build_scene

_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+|\n\s*\n")
_MASK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


def find(scene: Scene, phrase: str) -> Selection:
    """Resolve one phrase against a measured scene (see :func:`~medseg.text.scene.build_scene`).

    Raises
    ------
    QueryError
        Words not understood, a class the model lacks, or an ambiguous phrase (the message
        lists the words, the candidates and a suggestion).
    """
    return resolve(parse(phrase, scene.classes), scene)


@dataclass(frozen=True)
class GroundedSentence:
    """One sentence of a report: its selection, or why it has none."""

    index: int
    sentence: str
    selection: Selection | None
    error: QueryError | None

    @property
    def status(self) -> str:
        if self.error is not None:
            return (
                "ambiguous" if type(self.error).__name__ == "AmbiguousQuery" else "not_understood"
            )
        assert self.selection is not None
        return "resolved" if self.selection.mask.any() else "selects_nothing"


def split_sentences(text: str) -> list[str]:
    """A free-text report's sentences: split after ``.``, ``!``, ``?``, ``:`` followed by a
    space or line break (not inside ``2.6``), and at blank lines; wrapped lines are joined."""
    parts = _SENTENCE_END.split(text)
    return [" ".join(s.split()) for s in parts if s and s.strip(" .\t\n")]


def ground(scene: Scene, report_text: str) -> list[GroundedSentence]:
    """Resolve every sentence of a report; sentences the grammar cannot read keep their error."""
    out = []
    for index, sentence in enumerate(split_sentences(report_text), start=1):
        try:
            out.append(GroundedSentence(index, sentence, find(scene, sentence), None))
        except QueryError as err:
            out.append(GroundedSentence(index, sentence, None, err))
    return out


def load_scene(
    image: PathLikeStr,
    segmentation: PathLikeStr,
    *,
    label_names: PathLikeStr | None = None,
    lesion_labels: Sequence[str | int] | None = None,
    prior: tuple[PathLikeStr, PathLikeStr] | None = None,
) -> tuple[Scene, Image]:
    """Read an image and its segmentation (checked to share a grid) and build the scene.

    ``label_names`` is a ``dataset.json`` or a model folder; without it classes are named
    ``label_<v>``. Returns the scene and the segmentation image (whose geometry masks keep).
    """
    sources = {"image": str(image), "segmentation": str(segmentation)}
    img, seg = read_image(image), read_image(segmentation)
    require_same_grid(img, seg, sources, "image", "segmentation")
    info = read_label_info(Path(label_names)) if label_names is not None else None
    names = (info or LabelInfo(names=default_names(seg))).names
    prior_scan = None
    if prior is not None:
        prior_scan = PriorScan(read_image(prior[0]), read_image(prior[1]))
        require_same_grid(
            prior_scan.image,
            prior_scan.segmentation,
            {"prior_image": str(prior[0]), "prior_segmentation": str(prior[1])},
            "prior_image",
            "prior_segmentation",
        )
    scene = build_scene(
        seg,
        names=names,
        lesion_labels=tuple(lesion_labels) if lesion_labels is not None else None,
        prior=prior_scan,
        source=str(segmentation),
    )
    return scene, seg


def find_files(
    image: PathLikeStr,
    segmentation: PathLikeStr,
    phrase: str,
    out_dir: PathLikeStr,
    *,
    label_names: PathLikeStr | None = None,
    lesion_labels: Sequence[str | int] | None = None,
    prior: tuple[PathLikeStr, PathLikeStr] | None = None,
) -> tuple[Selection, dict[str, Path]]:
    """``medseg find``: write ``selection.<ext>`` (a 0/1 mask) and ``selection.json``."""
    scene, seg = load_scene(
        image, segmentation, label_names=label_names, lesion_labels=lesion_labels, prior=prior
    )
    selection = find(scene, phrase)
    out = _folder(out_dir)
    paths = {
        "mask": out / f"selection{_suffix(segmentation)}",
        "json": out / "selection.json",
    }
    write_image(seg.with_array(selection.mask[None].astype(np.uint8)), paths["mask"])
    _write_json(selection.to_dict(), paths["json"])
    return selection, paths


def ground_files(
    report: PathLikeStr,
    image: PathLikeStr,
    segmentation: PathLikeStr,
    out_dir: PathLikeStr,
    *,
    label_names: PathLikeStr | None = None,
    lesion_labels: Sequence[str | int] | None = None,
    prior: tuple[PathLikeStr, PathLikeStr] | None = None,
) -> tuple[list[GroundedSentence], dict[str, Path]]:
    """``medseg ground``: one mask per resolved sentence and ``grounding.json`` listing all."""
    try:
        text = Path(report).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise QueryError(f"{report}: cannot read the report text ({err})") from err
    scene, seg = load_scene(
        image, segmentation, label_names=label_names, lesion_labels=lesion_labels, prior=prior
    )
    grounded = ground(scene, text)
    out = _folder(out_dir)
    paths: dict[str, Path] = {}
    rows: list[dict[str, Any]] = []
    for g in grounded:
        row: dict[str, Any] = {"index": g.index, "sentence": g.sentence, "status": g.status}
        if g.selection is not None:
            row["explanation"] = g.selection.to_dict()
            if g.status == "resolved":
                path = out / f"sentence_{g.index:02d}{_suffix(segmentation)}"
                write_image(seg.with_array(g.selection.mask[None].astype(np.uint8)), path)
                row["mask"] = path.name
                paths[f"sentence_{g.index:02d}"] = path
        if g.error is not None:
            row["error"] = g.error.to_dict()
        rows.append(row)
    paths["json"] = out / "grounding.json"
    _write_json(
        {
            "report": str(report),
            "resolved": sum(g.status == "resolved" for g in grounded),
            "sentences": rows,
        },
        paths["json"],
    )
    return grounded, paths


def _folder(out_dir: PathLikeStr) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ImageWriteError(f"{out}: cannot create output folder ({err.strerror})") from err
    return out


def _suffix(path: PathLikeStr) -> str:
    name = str(path).lower()
    return next((s for s in _MASK_SUFFIXES if name.endswith(s)), ".nii.gz")


def _write_json(data: dict[str, Any], path: Path) -> None:
    write_text_atomic(json.dumps(data, indent=2, default=_jsonable) + "\n", path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
