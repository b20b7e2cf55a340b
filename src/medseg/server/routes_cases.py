"""Routes about the dataset: server info, case listing, progress, next case, case images."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from medseg import __version__
from medseg.infer.files import read_case_image
from medseg.server.deps import State
from medseg.server.encoding import nifti_bytes
from medseg.server.schemas import CaseOut, InfoOut, LabelOut, NextOut, ProgressOut

router = APIRouter(prefix="/api", tags=["cases"])
NIFTI = "application/octet-stream"


@router.get("/info")
def info(state: State) -> InfoOut:
    """Dataset name, labels (value, name, colour), engine and model in use."""
    return InfoOut(
        dataset=state.catalog.name,
        cases=len(state.catalog),
        labels=[LabelOut(**vars(label)) for label in state.catalog.labels],
        engine=state.engine.name,
        model=None if state.predictions is None else state.predictions.name,
        next_order=state.config.next_order,
        version=__version__,
    )


@router.get("/cases")
def cases(state: State) -> list[CaseOut]:
    """Every case of the listing with its correction status."""
    return [CaseOut(**vars(row)) for row in state.log.progress(state.catalog.ids)]


@router.get("/progress")
def progress(state: State) -> ProgressOut:
    """How many cases are saved, and per-case edits, time spent and Dice to the model."""
    rows = [CaseOut(**vars(row)) for row in state.log.progress(state.catalog.ids)]
    return ProgressOut(cases=len(rows), saved=sum(r.saved for r in rows), rows=rows)


@router.get("/cases/next")
def next_case(
    state: State,
    order: Literal["uncertainty", "first", "random"] | None = None,
    after: Annotated[str | None, Query(max_length=255)] = None,
) -> NextOut:
    """The next unsaved case: by the model's mean uncertainty (highest first), first or random."""
    chosen = order or state.config.next_order
    return NextOut(case_id=state.next_case(chosen, after), order=chosen)


@router.get("/cases/{case_id}/image.nii", response_class=Response)
def case_image(case_id: str, state: State) -> Response:
    """The case's image (first channel) as NIfTI-1, with its geometry, for the viewer."""
    image = read_case_image(state.catalog.get(case_id))
    return Response(nifti_bytes(image), media_type=NIFTI)
