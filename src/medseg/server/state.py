"""What the routes call: open a case, apply a prompt, undo, redo, save, pick the next case.

One :class:`ServerState` per process holds the engine (loaded once), the case listing, the edit
log, the model's cached predictions and the open sessions. Every method maps request bodies to
:class:`~medseg.interactive.multi.MultiSession` calls; bad input raises a
:class:`~medseg.errors.MedsegError` that the app turns into a 4xx response.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import GeometryError
from medseg.infer.files import read_case_image
from medseg.interactive.engine import Engine
from medseg.interactive.multi import LabelUpdate, MultiSession
from medseg.io import read_image, write_image
from medseg.server.catalog import CaseCatalog
from medseg.server.config import ServeConfig
from medseg.server.encoding import box_json, rle_encode
from medseg.server.predictions import ModelPredictions
from medseg.server.schemas import BoxIn, ClickIn, PromptIn, SaveOut, ScribbleIn, UpdateOut
from medseg.server.sessions import OpenCase, SessionManager
from medseg.server.store import EditLog

logger = logging.getLogger(__name__)


def dice_per_label(
    reference: npt.NDArray[np.integer], labels: npt.NDArray[np.integer]
) -> dict[int, float]:
    """Dice of each label value present in either map (background excluded)."""
    values = sorted(set(np.unique(reference).tolist()) | set(np.unique(labels).tolist()) - {0})
    out = {}
    for value in values:
        a, b = reference == value, labels == value
        total = int(a.sum()) + int(b.sum())
        out[int(value)] = 2.0 * int((a & b).sum()) / total if total else 1.0
    return out


class ServerState:
    """The server's long-lived objects (see the module docstring)."""

    def __init__(
        self,
        config: ServeConfig,
        engine: Engine,
        catalog: CaseCatalog,
        log: EditLog,
        predictions: ModelPredictions | None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.catalog = catalog
        self.log = log
        self.predictions = predictions
        self.sessions = SessionManager(config.max_sessions, config.idle_seconds)
        self.output = config.output_dir
        self._rng = np.random.default_rng(config.seed)

    # cases ---------------------------------------------------------------------------------

    def saved_path(self, case_id: str) -> Path:
        return self.output / f"{case_id}{self.catalog.get(case_id).suffix}"

    def next_case(self, order: str, after: str | None = None) -> str | None:
        """An unsaved case other than ``after``: most uncertain, first, or random."""
        if after is not None:
            self.catalog.get(after)
        saved = self.log.saved_cases()
        todo = [c for c in self.catalog.ids if c not in saved and c != after]
        if not todo:
            return None
        if order == "random":
            return str(self._rng.choice(todo))
        if order == "uncertainty":
            known = self.log.uncertainties()
            ranked = [c for c in todo if known.get(c) is not None]
            if ranked:
                return max(ranked, key=lambda c: known[c])
        return todo[0]

    # sessions ------------------------------------------------------------------------------

    def open(self, case_id: str, start: str = "auto") -> OpenCase:
        """Open a session on a listed case; the starting mask follows ``start``."""
        case = self.catalog.get(case_id)

        def build(session_id: str) -> OpenCase:
            image = read_case_image(case)
            model = None
            if self.predictions is not None and start in ("auto", "model"):
                model = self.predictions.labels(case_id, image)
            source, initial = self._starting_mask(case_id, start, model)
            multi = MultiSession(image, self.engine, overwrite=self.config.overwrite)
            if initial is not None:
                multi.start_from(initial)
            return OpenCase(session_id, case_id, image, multi, source, model)

        session = self.sessions.add(build)
        self.log.log_edit(case_id, session.session_id, "open", prompt={"start": session.start})
        return session

    def _starting_mask(
        self, case_id: str, start: str, model: npt.NDArray[np.uint8] | None
    ) -> tuple[str, npt.NDArray[np.uint8] | None]:
        saved = self.saved_path(case_id)
        reference = self.catalog.label_path(case_id) if self.config.reference_start else None
        if start in ("auto", "saved") and saved.is_file():
            return "saved", read_image(saved).array[0]
        if start in ("auto", "model") and model is not None:
            return "model", model
        if start in ("auto", "reference") and reference is not None:
            return "reference", read_image(reference).array[0]
        if start != "auto" and start != "empty":
            raise GeometryError(f"case {case_id!r} has no {start} mask; open it with start=auto")
        return "empty", None

    def prompt_limit(self, session: OpenCase) -> int:
        """Prompts a session may hold: the configured cap, or fewer for large images (each
        prompt keeps a mask copy of one byte per voxel for undo)."""
        voxels = int(np.prod(session.image.spatial_shape))
        by_memory = self.config.max_history_mb * 2**20 // max(voxels, 1)
        return int(min(self.config.max_prompts, max(10, by_memory)))

    def apply(self, session: OpenCase, body: PromptIn, *, redo: bool = False) -> UpdateOut:
        """Add one prompt and run the engine for its label."""
        if session.prompts >= self.prompt_limit(session):
            raise GeometryError(
                f"this session has {session.prompts} prompts, the most allowed; save and reopen"
            )
        multi = session.multi
        if isinstance(body, ClickIn):
            multi.add_click(
                body.label, body.point, positive=body.positive, axis=body.axis, index=body.index
            )
        elif isinstance(body, BoxIn):
            multi.add_box(body.label, body.lo, body.hi, axis=body.axis, index=body.index)
        elif isinstance(body, ScribbleIn):
            multi.add_scribble(
                body.label,
                body.points,
                positive=body.positive,
                width=body.width,
                axis=body.axis,
                index=body.index,
            )
        tic = time.perf_counter()
        try:
            update = multi.predict(body.label)
        except BaseException:
            multi.discard_pending(body.label)
            raise
        engine_ms = 1000 * (time.perf_counter() - tic)
        payload = body.model_dump()
        session.done.append(payload)
        if not redo:
            session.redo.clear()
        session.prompts += 1
        self.log.log_edit(
            session.case_id,
            session.session_id,
            "redo" if redo else body.kind,
            label=body.label,
            prompt=payload,
            engine_ms=engine_ms,
        )
        return self._update_out(session, update, engine_ms)

    def undo(self, session: OpenCase) -> UpdateOut:
        update = session.multi.undo()
        if update is not None:
            payload = session.done.pop()
            if payload is not None:
                session.redo.append(payload)
                session.prompts -= 1
            self.log.log_edit(session.case_id, session.session_id, "undo", label=update.label)
        return self._update_out(session, update, 0.0)

    def redo(self, session: OpenCase, parse: Any) -> UpdateOut:
        if not session.redo:
            return self._update_out(session, None, 0.0)
        body = parse(session.redo.pop())
        return self.apply(session, body, redo=True)

    def clear(self, session: OpenCase, label: int) -> UpdateOut:
        update = session.multi.clear(label)
        session.done.append(None)
        session.redo.clear()
        self.log.log_edit(session.case_id, session.session_id, "clear", label=label)
        return self._update_out(session, update, 0.0)

    def restore(self, session: OpenCase, label: int) -> UpdateOut:
        """Reset one label to the trained model's mask of that class (undoable)."""
        if session.model_labels is None:
            raise GeometryError("this session has no model prediction to restore from")
        update = session.multi.restore(label, session.model_labels == label)
        session.done.append(None)
        session.redo.clear()
        self.log.log_edit(session.case_id, session.session_id, "restore", label=label)
        return self._update_out(session, update, 0.0)

    def full_mask(self, session: OpenCase) -> UpdateOut:
        labels = session.multi.labels
        box = tuple(slice(0, s) for s in labels.shape)
        return self._update_out(session, LabelUpdate(0, box, labels), 0.0)

    def _update_out(
        self, session: OpenCase, update: LabelUpdate | None, engine_ms: float
    ) -> UpdateOut:
        box: list[list[int]] = []
        rle: list[int] = []
        if update is not None and update.changed:
            box, rle = box_json(update.box), rle_encode(update.values)
        return UpdateOut(
            label=None if update is None else update.label,
            box=box,
            rle=rle,
            engine_ms=round(engine_ms, 2),
            can_undo=session.multi.can_undo,
            can_redo=bool(session.redo),
            prompts=session.prompts,
        )

    def save(self, session: OpenCase) -> SaveOut:
        """Write the label map with the image's exact geometry, atomically, and log it."""
        labels = session.multi.labels
        path = self.saved_path(session.case_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(session.image.with_array(labels[None]), path)
        seconds = time.time() - session.opened
        dice = None
        if session.model_labels is not None:
            dice = dice_per_label(session.model_labels, labels)
        self.log.log_save(
            session.case_id,
            session.session_id,
            path,
            seconds=seconds,
            prompts=session.prompts,
            dice_per_label=dice,
            start=session.start,
        )
        mean = sum(dice.values()) / len(dice) if dice else None
        return SaveOut(path=str(path), seconds=seconds, dice_model=mean, dice_per_label=dice)
