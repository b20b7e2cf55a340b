"""Routes of a session: open, prompt, undo, redo, clear, read the mask, save, close."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response
from pydantic import TypeAdapter

from medseg.server.deps import SessionDep as Session
from medseg.server.deps import State
from medseg.server.encoding import nifti_bytes
from medseg.server.routes_cases import NIFTI
from medseg.server.schemas import LabelIn, OpenIn, PromptIn, SaveOut, SessionOut, UpdateOut
from medseg.server.sessions import OpenCase

router = APIRouter(prefix="/api/sessions", tags=["sessions"])
_PROMPT = TypeAdapter(PromptIn)


def _describe(session: OpenCase) -> SessionOut:
    present = sorted(int(v) for v in set(session.multi.labels.ravel().tolist()) - {0})
    return SessionOut(
        session_id=session.session_id,
        case_id=session.case_id,
        shape=list(session.image.spatial_shape),
        spacing=[float(s) for s in session.image.spacing],
        start=session.start,
        labels_present=present,
        prompts=session.prompts,
        can_undo=session.multi.can_undo,
        can_redo=bool(session.redo),
    )


@router.post("", status_code=201)
def open_session(body: OpenIn, state: State) -> SessionOut:
    """Open a case; the starting mask is the last saved correction, else the model's
    prediction, else the dataset's label, else empty (``start`` forces one)."""
    return _describe(state.open(body.case_id, body.start))


@router.get("/{session_id}")
def describe(session: Session) -> SessionOut:
    return _describe(session[1])


@router.delete("/{session_id}", status_code=204)
def close(session_id: str, state: State) -> Response:
    state.sessions.close(session_id)
    return Response(status_code=204)


@router.get("/{session_id}/labels.nii", response_class=Response)
def labels_nifti(session: Session) -> Response:
    """The current label map as a uint8 NIfTI-1 with the image's geometry."""
    _, open_case = session
    with open_case.lock:
        labels = open_case.multi.labels
    return Response(nifti_bytes(open_case.image.with_array(labels[None])), media_type=NIFTI)


@router.get("/{session_id}/mask")
def mask(session: Session) -> UpdateOut:
    """The whole label map, run-length encoded (``box`` covers the image)."""
    state, open_case = session
    with open_case.lock:
        return state.full_mask(open_case)


@router.post("/{session_id}/prompts")
def prompt(session: Session, body: Annotated[PromptIn, Body()]) -> UpdateOut:
    """Add a click, box or scribble for a label; returns the changed box, run-length encoded."""
    state, open_case = session
    with open_case.lock:
        return state.apply(open_case, body)


@router.post("/{session_id}/undo")
def undo(session: Session) -> UpdateOut:
    """Undo the latest edit of any label (an empty box when there is nothing to undo)."""
    state, open_case = session
    with open_case.lock:
        return state.undo(open_case)


@router.post("/{session_id}/redo")
def redo(session: Session) -> UpdateOut:
    """Apply the latest undone prompt again."""
    state, open_case = session
    with open_case.lock:
        return state.redo(open_case, _PROMPT.validate_python)


@router.post("/{session_id}/clear")
def clear(session: Session, body: LabelIn) -> UpdateOut:
    """Remove one label from the map (undoable)."""
    state, open_case = session
    with open_case.lock:
        return state.clear(open_case, body.label)


@router.post("/{session_id}/restore")
def restore(session: Session, body: LabelIn) -> UpdateOut:
    """Reset one label to the trained model's prediction of that class (undoable)."""
    state, open_case = session
    with open_case.lock:
        return state.restore(open_case, body.label)


@router.post("/{session_id}/save")
def save(session: Session) -> SaveOut:
    """Write the label map atomically with the image's geometry and log the save."""
    state, open_case = session
    with open_case.lock:
        return state.save(open_case)
