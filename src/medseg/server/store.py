"""The edit log: every prompt and every save, in SQLite beside the corrected masks.

A server restart loses nothing: saved masks are files, and the log tells which cases are done,
how long each took and how far the saved mask moved from the model's (Dice). Tables:

``edits``
    case_id, session_id, time (Unix s), label, action (click/box/scribble/undo/redo/clear),
    prompt (JSON), engine_ms.
``saves``
    case_id, session_id, time, path, seconds (from opening the case to saving), prompts,
    dice_model (mean Dice over labels between the model's mask and the saved one, NULL without
    a model), dice_per_label (JSON), start (where the starting mask came from).
``predictions``
    case_id, mean_uncertainty (mean predictive entropy, 0-1), time: the model's cached results.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS edits (
    id INTEGER PRIMARY KEY, case_id TEXT NOT NULL, session_id TEXT NOT NULL, time REAL NOT NULL,
    label INTEGER, action TEXT NOT NULL, prompt TEXT, engine_ms REAL
);
CREATE TABLE IF NOT EXISTS saves (
    id INTEGER PRIMARY KEY, case_id TEXT NOT NULL, session_id TEXT NOT NULL, time REAL NOT NULL,
    path TEXT NOT NULL, seconds REAL NOT NULL, prompts INTEGER NOT NULL, dice_model REAL,
    dice_per_label TEXT, start TEXT
);
CREATE TABLE IF NOT EXISTS predictions (
    case_id TEXT PRIMARY KEY, mean_uncertainty REAL, time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS edits_case ON edits (case_id);
CREATE INDEX IF NOT EXISTS saves_case ON saves (case_id);
"""


@dataclass(frozen=True)
class CaseProgress:
    """What the log knows about one case."""

    case_id: str
    saved: bool
    saves: int
    edits: int
    last_saved: float | None
    seconds: float | None
    dice_model: float | None
    mean_uncertainty: float | None


class EditLog:
    """SQLite edit log at ``path`` (created with its tables if missing). Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a killed or restarted process loses nothing; only a power cut may
        # drop the last edits (the saved masks are separate files, written atomically)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def log_edit(
        self,
        case_id: str,
        session_id: str,
        action: str,
        *,
        label: int | None = None,
        prompt: dict[str, Any] | None = None,
        engine_ms: float | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO edits (case_id, session_id, time, label, action, prompt, engine_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    case_id,
                    session_id,
                    time.time(),
                    label,
                    action,
                    None if prompt is None else json.dumps(prompt, sort_keys=True),
                    engine_ms,
                ),
            )

    def log_save(
        self,
        case_id: str,
        session_id: str,
        path: Path,
        *,
        seconds: float,
        prompts: int,
        dice_per_label: dict[int, float] | None,
        start: str,
    ) -> None:
        mean = None
        if dice_per_label:
            mean = sum(dice_per_label.values()) / len(dice_per_label)
        with self._tx() as db:
            db.execute(
                "INSERT INTO saves (case_id, session_id, time, path, seconds, prompts, dice_model,"
                " dice_per_label, start) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case_id,
                    session_id,
                    time.time(),
                    str(path),
                    seconds,
                    prompts,
                    mean,
                    None if dice_per_label is None else json.dumps(dice_per_label),
                    start,
                ),
            )

    def set_uncertainty(self, case_id: str, mean_uncertainty: float | None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO predictions (case_id, mean_uncertainty, time)"
                " VALUES (?, ?, ?)",
                (case_id, mean_uncertainty, time.time()),
            )

    def uncertainties(self) -> dict[str, float | None]:
        with self._lock:
            rows = self._conn.execute("SELECT case_id, mean_uncertainty FROM predictions")
            return dict(rows.fetchall())

    def saved_cases(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT DISTINCT case_id FROM saves")}

    def progress(self, case_ids: list[str]) -> list[CaseProgress]:
        """One row per listed case, in the given order."""
        with self._lock:
            edits = dict(self._conn.execute("SELECT case_id, COUNT(*) FROM edits GROUP BY case_id"))
            saves: dict[str, tuple[int, float, float, float | None]] = {}
            for case_id, count, last, seconds, dice in self._conn.execute(
                "SELECT case_id, COUNT(*), MAX(time), seconds, dice_model FROM saves "
                "GROUP BY case_id HAVING time = MAX(time)"
            ):
                saves[case_id] = (count, last, seconds, dice)
            unc = dict(self._conn.execute("SELECT case_id, mean_uncertainty FROM predictions"))
        rows = []
        for case_id in case_ids:
            count, last, seconds, dice = saves.get(case_id, (0, None, None, None))
            rows.append(
                CaseProgress(
                    case_id=case_id,
                    saved=count > 0,
                    saves=count,
                    edits=int(edits.get(case_id, 0)),
                    last_saved=last,
                    seconds=seconds,
                    dice_model=dice,
                    mean_uncertainty=unc.get(case_id),
                )
            )
        return rows
