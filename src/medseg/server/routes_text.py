"""Route of a text prompt: a phrase selects a region that the engine refines (docs/text.md).

``POST /api/sessions/{id}/text`` with ``{"phrase": "the largest lesion on the left"}`` resolves
the phrase against the session's current label map and the dataset's class names
(:func:`medseg.interactive.text_prompt.text_prompt`). The answer is the label update, like a
click's, plus ``explanation`` (the reading of the phrase and the selected lesions with their
measurements, as ``medseg find`` writes it). A phrase that is not understood or is ambiguous is
a 400 whose ``detail`` carries the words not understood, the candidates and a suggestion.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from medseg.interactive.text_prompt import text_prompt
from medseg.server.deps import SessionDep as Session
from medseg.server.encoding import box_json, rle_encode
from medseg.server.schemas import LabelValue, UpdateOut

router = APIRouter(prefix="/api/sessions", tags=["text"])


class TextIn(BaseModel):
    """A phrase; ``label`` the object to edit (default: the selection's class); ``refine``
    lets the engine refine the selection from its bounding box."""

    model_config = ConfigDict(extra="forbid")

    phrase: Annotated[str, Field(min_length=1, max_length=500)]
    label: LabelValue | None = None
    refine: bool = True


class TextOut(UpdateOut):
    """The label update of the text prompt and the explanation of the match."""

    explanation: dict[str, Any]


@router.post("/{session_id}/text")
def text(session: Session, body: Annotated[TextIn, Body()]) -> TextOut:
    """Select what the phrase names; the engine refines it; one undo takes it back."""
    state, open_case = session
    names = {info.value: info.name for info in state.catalog.labels}
    with open_case.lock:
        tic = time.perf_counter()
        result = text_prompt(
            open_case.multi,
            body.phrase,
            names,
            label=body.label,
            refine=body.refine,
            engine=state.engine,
            geometry=open_case.image,
        )
        engine_ms = 1000 * (time.perf_counter() - tic)
        update = result.update
        if result.edited:
            open_case.done.append(None)  # undoable, not redoable (like clear and restore)
            open_case.redo.clear()
            state.log.log_edit(
                open_case.case_id,
                open_case.session_id,
                "text",
                label=result.label,
                prompt=body.model_dump(),
                engine_ms=engine_ms,
            )
        return TextOut(
            label=result.label,
            box=box_json(update.box) if update.changed else [],
            rle=rle_encode(update.values) if update.changed else [],
            engine_ms=round(engine_ms, 2),
            can_undo=open_case.multi.can_undo,
            can_redo=bool(open_case.redo),
            prompts=open_case.prompts,
            explanation=result.selection.to_dict(),
        )
