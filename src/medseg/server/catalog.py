"""The cases a server may open: listed once at start, addressed by id only.

DATA is either an nnU-Net raw dataset (``dataset.json`` beside ``imagesTr``; ``imagesTs`` is
listed too) or a plain folder of images (nnU-Net ``_0000`` channel naming is grouped, DICOM
series folders are cases). Label names come from ``dataset.json``, else from the model's plan,
else a single ``object`` label. Ids are looked up in this listing, never joined to a path, so
a request cannot reach a file outside it.
"""

from __future__ import annotations

import colorsys
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import DatasetError
from medseg.infer.inputs import InputCase, find_inputs
from medseg.server.errors import NotFoundError

logger = logging.getLogger(__name__)

#: Colours of the first labels (RGB 0-255), chosen to stay apart on grey images; later labels
#: get evenly spaced hues.
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)


def label_colour(value: int) -> tuple[int, int, int]:
    """Display colour of label ``value`` (1-based), RGB 0-255."""
    if value <= len(PALETTE):
        return PALETTE[value - 1]
    r, g, b = colorsys.hsv_to_rgb(((value * 0.618034) % 1.0), 0.75, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


@dataclass(frozen=True)
class LabelInfo:
    """One label: value, name, display colour (RGB 0-255)."""

    value: int
    name: str
    colour: tuple[int, int, int]


class CaseCatalog:
    """The listing of DATA.

    Parameters
    ----------
    data : path
        nnU-Net raw dataset folder or a folder of images.
    model_labels : mapping of str to int, optional
        Label names of the model (used when DATA has no ``dataset.json``).

    Raises
    ------
    DatasetError
        DATA is missing, holds no image, or two cases share an id.
    """

    def __init__(self, data: Path, *, model_labels: Mapping[str, int] | None = None) -> None:
        self.root = Path(data)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a folder; give a folder of images or a dataset")
        names: Mapping[str, int] = {}
        meta = self.root / "dataset.json"
        folders = [self.root]
        if meta.is_file() and (self.root / "imagesTr").is_dir():
            from medseg.data.nnunet import parse_labels, read_dataset_json

            spec = read_dataset_json(meta)
            names = parse_labels(spec["labels"], spec.get("regions_class_order")).foreground
            folders = [f for f in (self.root / "imagesTr", self.root / "imagesTs") if f.is_dir()]
        elif model_labels:
            names = {n: v for n, v in model_labels.items() if v}
        cases: dict[str, InputCase] = {}
        for folder in folders:
            for case in find_inputs(folder):
                if case.case_id in cases:
                    raise DatasetError(
                        f"{folder}: case id {case.case_id!r} appears twice in {self.root}; "
                        "rename one of them"
                    )
                cases[case.case_id] = case
        if not cases:
            raise DatasetError(f"{self.root}: no image found (NIfTI, NRRD, MHA, PNG, DICOM, ...)")
        self._cases = cases
        named = sorted(names.items(), key=lambda item: item[1]) or [("object", 1)]
        self.labels = tuple(LabelInfo(v, n, label_colour(v)) for n, v in named if 0 < v <= 255)
        self.name = self.root.name

    @property
    def ids(self) -> list[str]:
        """Case ids in listing order (sorted)."""
        return sorted(self._cases)

    def __len__(self) -> int:
        return len(self._cases)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._cases

    def get(self, case_id: str) -> InputCase:
        """The case with this id; :class:`NotFoundError` for anything not in the listing."""
        case = self._cases.get(case_id)
        if case is None:
            shown = case_id if len(case_id) <= 80 else case_id[:80] + "..."
            raise NotFoundError(f"unknown case {shown!r}; GET /api/cases lists the cases")
        return case

    def label_path(self, case_id: str) -> Path | None:
        """An existing reference label of the case (nnU-Net ``labelsTr``/``labelsTs``), if any."""
        case = self.get(case_id)
        for folder in ("labelsTr", "labelsTs"):
            candidate = self.root / folder / f"{case_id}{case.suffix}"
            if candidate.is_file():
                return candidate
        return None
