"""Open sessions: unguessable ids, a cap, eviction of idle sessions, one lock per session."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.interactive.multi import MultiSession
from medseg.io import Image
from medseg.server.errors import NotFoundError, TooManySessionsError


@dataclass(eq=False)
class OpenCase:
    """One user's work on one case.

    ``done`` mirrors the undo history of ``multi`` (the prompt body of each step, None for a
    clear) so that undone prompts can be redone; ``redo`` holds undone prompt bodies.
    """

    session_id: str
    case_id: str
    image: Image
    multi: MultiSession
    start: str
    model_labels: npt.NDArray[np.uint8] | None
    opened: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: list[dict[str, Any] | None] = field(default_factory=list)
    redo: list[dict[str, Any]] = field(default_factory=list)
    prompts: int = 0


class SessionManager:
    """At most ``max_sessions`` open sessions; those idle over ``idle_seconds`` make room."""

    def __init__(self, max_sessions: int, idle_seconds: float) -> None:
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self._sessions: dict[str, OpenCase] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def reserve(self) -> str:
        """A new session id once there is room (evicting idle sessions), else raise."""
        with self._lock:
            self._evict_idle()
            if len(self._sessions) >= self.max_sessions:
                raise TooManySessionsError(
                    f"{self.max_sessions} sessions are open and none has been idle for "
                    f"{self.idle_seconds:.0f} s; close one (DELETE /api/sessions/ID) or wait"
                )
            return secrets.token_urlsafe(24)

    def add(self, build: Callable[[str], OpenCase]) -> OpenCase:
        """Reserve an id, build the session outside the lock, then register it."""
        session_id = self.reserve()
        session = build(session_id)
        with self._lock:
            self._evict_idle()
            if len(self._sessions) >= self.max_sessions:
                raise TooManySessionsError(f"{self.max_sessions} sessions are open")
            self._sessions[session_id] = session
        return session

    def get(self, session_id: str) -> OpenCase:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                raise NotFoundError(
                    "unknown or expired session; open the case again (POST /api/sessions)"
                )
            session.last_used = time.monotonic()
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            if self._sessions.pop(session_id, None) is None:
                raise NotFoundError("unknown or expired session")

    def _evict_idle(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._sessions.items() if now - v.last_used > self.idle_seconds]:
            del self._sessions[sid]
