"""Request and response bodies of the API (pydantic models, validated before any work).

Coordinates are voxel indices in array order, ``(z, y, x)`` for 3D and ``(y, x)`` for 2D. A
prompt drawn on a slice may instead give ``axis`` (0, 1, 2: the array axis the slice is
orthogonal to) and ``index`` (the slice), with in-plane coordinates in increasing axis order.
NaN, infinities, coordinates beyond +/-1e6 and unknown fields are refused with 422.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Coordinate = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=3)]
LabelValue = Annotated[int, Field(ge=1, le=255, description="Label value the prompt edits.")]
Axis = Annotated[int, Field(ge=0, le=2)]
SliceIndex = Annotated[int, Field(ge=0, le=1_000_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ClickIn(_Strict):
    """A positive (object) or negative (background) click."""

    kind: Literal["click"]
    label: LabelValue
    point: Point
    positive: bool = True
    axis: Axis | None = None
    index: SliceIndex | None = None


class BoxIn(_Strict):
    """A box with inclusive corners; drawn on one slice it is flat along that slice's axis."""

    kind: Literal["box"]
    label: LabelValue
    lo: Point
    hi: Point
    axis: Axis | None = None
    index: SliceIndex | None = None


class ScribbleIn(_Strict):
    """A brush stroke (polyline of voxel points, brush ``width`` in voxels)."""

    kind: Literal["scribble"]
    label: LabelValue
    points: Annotated[list[Point], Field(min_length=1, max_length=5000)]
    positive: bool = True
    width: Annotated[float, Field(ge=1.0, le=64.0)] = 3.0
    axis: Axis | None = None
    index: SliceIndex | None = None

    @model_validator(mode="after")
    def _same_length(self) -> ScribbleIn:
        if len({len(p) for p in self.points}) > 1:
            raise ValueError("every point of a scribble needs the same number of coordinates")
        return self


PromptIn = Annotated[ClickIn | BoxIn | ScribbleIn, Field(discriminator="kind")]


class OpenIn(_Strict):
    """Open a session on a case. ``start`` picks the starting mask (``auto``: the last saved
    correction, else the model's prediction, else the dataset's label file, else empty)."""

    case_id: Annotated[str, Field(min_length=1, max_length=255)]
    start: Literal["auto", "saved", "model", "reference", "empty"] = "auto"


class LabelIn(_Strict):
    """One label value (clear it, or restore the model's mask of that class)."""

    label: LabelValue


class LabelOut(BaseModel):
    value: int
    name: str
    colour: tuple[int, int, int]


class InfoOut(BaseModel):
    dataset: str
    cases: int
    labels: list[LabelOut]
    engine: str
    model: str | None
    next_order: str
    version: str


class CaseOut(BaseModel):
    case_id: str
    saved: bool
    saves: int
    edits: int
    last_saved: float | None
    seconds: float | None
    dice_model: float | None
    mean_uncertainty: float | None


class ProgressOut(BaseModel):
    cases: int
    saved: int
    rows: list[CaseOut]


class NextOut(BaseModel):
    case_id: str | None
    order: str


class SessionOut(BaseModel):
    session_id: str
    case_id: str
    shape: list[int]
    spacing: list[float]
    start: str
    labels_present: list[int]
    prompts: int
    can_undo: bool
    can_redo: bool


class UpdateOut(BaseModel):
    """A label update: ``box`` is ``[[start, stop], ...]`` per axis (array order, stop
    exclusive; empty when nothing changed), ``rle`` the label values inside it in C order as
    ``[value, count, ...]``."""

    label: int | None
    box: list[list[int]]
    rle: list[int]
    engine_ms: float
    can_undo: bool
    can_redo: bool
    prompts: int


class SaveOut(BaseModel):
    path: str
    seconds: float
    dice_model: float | None
    dice_per_label: dict[int, float] | None
