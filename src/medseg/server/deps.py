"""FastAPI dependencies: the process's :class:`ServerState` and a session looked up by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from medseg.server.sessions import OpenCase
from medseg.server.state import ServerState


def get_state(request: Request) -> ServerState:
    return request.app.state.medseg


State = Annotated[ServerState, Depends(get_state)]


def get_session(
    state: State, session_id: Annotated[str, Path(max_length=64)]
) -> tuple[ServerState, OpenCase]:
    return state, state.sessions.get(session_id)


SessionDep = Annotated[tuple[ServerState, OpenCase], Depends(get_session)]
