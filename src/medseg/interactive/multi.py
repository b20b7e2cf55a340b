"""Several objects in one image: one label map, one :class:`Session` per label value.

A viewer edits one label layer holding many objects (liver 1, spleen 2, ...). Each label value
gets its own :class:`~medseg.interactive.session.Session` with its own prompts; the label map is
what the user sees and saves. A prediction for label ``L`` writes ``L`` wherever the object's new
mask is True (the latest edit wins over another label there) and clears ``L`` where its mask
became False. Before each prediction the object's session is synchronised with the label map,
so voxels another label took are not silently reclaimed.

A session can start from a trained model's label map (:meth:`MultiSession.start_from`): every
class of the model becomes an object the prompts then refine, which is how a viewer starts
from a model's class; :meth:`MultiSession.add_model_class` does the same for one class named
as the trained model names it ("liver"), running the model once per session. Undo works across
objects, most recent edit first; each step remembers only the bounding box it changed, so
memory stays proportional to the edits, not the image.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from medseg._typing import BoolArray, IntArray
from medseg.errors import ConfigError, GeometryError
from medseg.interactive.engine import Engine, default_engine
from medseg.interactive.prompts import Box, Click, Prompt, Scribble
from medseg.interactive.session import Session
from medseg.io import Image

#: Label maps hold values up to 255 (uint8), as nnU-Net label files do.
MAX_LABEL = 255


class LabelModel(Protocol):
    """What :meth:`MultiSession.add_model_class` needs of a trained model: a
    :class:`medseg.infer.Predictor` (``model.labels`` maps class names to values,
    ``predict_image(image).labels`` is the label map)."""

    model: object

    def predict_image(self, image: Image) -> object: ...


@dataclass(frozen=True)
class LabelUpdate:
    """What one edit changed in the label map.

    ``box`` holds the slices of the smallest box around every changed voxel (empty slices when
    nothing changed); ``values`` is the label map inside that box after the edit, uint8, of the
    box's shape. ``label`` is the object that was edited.
    """

    label: int
    box: tuple[slice, ...]
    values: npt.NDArray[np.uint8]

    @property
    def changed(self) -> bool:
        return self.values.size > 0


@dataclass(frozen=True)
class _Step:
    label: int
    box: tuple[slice, ...]
    before: npt.NDArray[np.uint8]
    session_steps: int


def changed_box(before: IntArray, after: IntArray) -> tuple[slice, ...]:
    """Smallest box (slices) around voxels where ``before != after``; zero-size when equal."""
    diff = before != after
    if not diff.any():
        return tuple(slice(0, 0) for _ in diff.shape)
    box = []
    for axis in range(diff.ndim):
        other = tuple(a for a in range(diff.ndim) if a != axis)
        hits = np.flatnonzero(diff.any(axis=other))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


class MultiSession:
    """Interactive segmentation of several labelled objects in one image.

    Parameters
    ----------
    image : Image or ndarray
        As for :class:`~medseg.interactive.session.Session`: a channel-first image or a
        (Z, Y, X) / (Y, X) array.
    engine : Engine or callable() -> Engine, optional
        The segmenter shared by every object, or a factory called once per object (for
        engines that keep per-object state); the shipped universal model by default.
    overwrite : bool
        Whether an object's prediction may paint over voxels of other labels (default: no,
        other objects are protected; remove them with a negative prompt on their own label).
    session_options
        Keyword arguments for each :class:`Session` (region-of-interest rule).

    Examples
    --------
    >>> multi = MultiSession(image, load_engine("classical"))   # doctest: +SKIP
    >>> multi.add_click(1, (12, 40, 40))                         # doctest: +SKIP
    >>> update = multi.predict(1)                                # doctest: +SKIP
    >>> multi.labels                                             # doctest: +SKIP
    """

    def __init__(
        self,
        image: Image | npt.NDArray[np.generic],
        engine: Engine | Callable[[], Engine] | None = None,
        *,
        overwrite: bool = False,
        **session_options: float,
    ) -> None:
        self.overwrite = overwrite
        engine = default_engine() if engine is None else engine
        first = Session(image, engine if isinstance(engine, Engine) else engine())
        self.image = first.image
        self._engine = engine
        self._options = session_options
        self._sessions: dict[int, Session] = {}
        self._spare: Session | None = first
        self._labels = np.zeros(self.image.spatial_shape, dtype=np.uint8)
        self._history: list[_Step] = []
        self._pending: Counter[int] = Counter()
        self._model_maps: list[tuple[LabelModel, npt.NDArray[np.uint8]]] = []

    @property
    def shape(self) -> tuple[int, ...]:
        return self.image.spatial_shape

    @property
    def labels(self) -> npt.NDArray[np.uint8]:
        """The label map (a copy), uint8, shape (Z, Y, X) or (Y, X); 0 is background."""
        return self._labels.copy()

    @property
    def objects(self) -> tuple[int, ...]:
        """Label values that have a session (prompted or started from a mask), sorted."""
        return tuple(sorted(self._sessions))

    def prompts(self, label: int) -> tuple[Prompt, ...]:
        """The prompts given for ``label`` so far."""
        session = self._sessions.get(self._check_label(label))
        return session.prompts if session is not None else ()

    def session(self, label: int) -> Session:
        """The :class:`Session` of one object, created on first use."""
        label = self._check_label(label)
        if label not in self._sessions:
            if self._spare is not None:
                self._sessions[label], self._spare = self._spare, None
            else:
                engine = self._engine if isinstance(self._engine, Engine) else self._engine()
                self._sessions[label] = Session(self.image, engine, **self._options)
        return self._sessions[label]

    def _check_label(self, label: int) -> int:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise GeometryError(f"label must be an integer, got {label!r}")
        if not 1 <= int(label) <= MAX_LABEL:
            raise GeometryError(f"label must be between 1 and {MAX_LABEL}, got {label}")
        return int(label)

    def start_from(self, label_map: npt.ArrayLike) -> None:
        """Start from a label map (e.g. a trained model's prediction): each value an object.

        Forgets every prompt and the undo history. Values above 255 or below 0 are rejected.
        """
        labels = np.asarray(label_map)
        if labels.shape != self.shape:
            raise GeometryError(f"label map shape {labels.shape} differs from image {self.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > MAX_LABEL):
            raise GeometryError(f"label values must lie in 0..{MAX_LABEL}")
        self._labels = labels.astype(np.uint8)
        self._history.clear()
        self._pending.clear()
        for session in self._sessions.values():
            session.reset()
        for value in np.unique(self._labels):
            if value:
                self.session(int(value)).set_mask(self._labels == value)

    def add_click(
        self,
        label: int,
        point: Sequence[float],
        *,
        positive: bool = True,
        axis: int | None = None,
        index: int | None = None,
    ) -> Click:
        """Add a click for object ``label``; see :meth:`Session.add_click`."""
        click = self.session(label).add_click(point, positive=positive, axis=axis, index=index)
        self._pending[int(label)] += 1
        return click

    def add_box(
        self,
        label: int,
        lo: Sequence[float],
        hi: Sequence[float],
        *,
        axis: int | None = None,
        index: int | None = None,
    ) -> Box:
        """Add a box for object ``label``; see :meth:`Session.add_box`."""
        box = self.session(label).add_box(lo, hi, axis=axis, index=index)
        self._pending[int(label)] += 1
        return box

    def add_scribble(
        self,
        label: int,
        points: Sequence[Sequence[float]] | None = None,
        *,
        mask: npt.ArrayLike | None = None,
        positive: bool = True,
        width: float = 3.0,
        axis: int | None = None,
        index: int | None = None,
    ) -> Scribble:
        """Add a stroke for object ``label``; see :meth:`Session.add_scribble`."""
        scribble = self.session(label).add_scribble(
            points, mask=mask, positive=positive, width=width, axis=axis, index=index
        )
        self._pending[int(label)] += 1
        return scribble

    def discard_pending(self, label: int) -> None:
        """Remove the prompts of ``label`` added since its last prediction."""
        session = self.session(label)
        for _ in range(self._pending[int(label)]):
            session.undo()
        self._pending[int(label)] = 0

    def predict(self, label: int) -> LabelUpdate:
        """Run the engine for object ``label`` and paste its mask into the label map.

        Returns
        -------
        LabelUpdate
            The changed box and the label map inside it after the edit.
        """
        session = self.session(label)
        steps = self._pending[int(label)]
        self._pending[int(label)] = 0
        own = self._labels == label
        if not np.array_equal(own, session.mask):
            session.set_mask(own)
            steps += 1
        prediction = session.predict()
        steps += 1
        roi = prediction.roi
        before = self._labels[roi].copy()
        after = before.copy()
        mask = prediction.mask[roi]
        after[mask if self.overwrite else mask & (before == 0)] = label
        after[(before == label) & ~mask] = 0
        local = changed_box(before, after)
        box = tuple(
            slice(r.start + b.start, r.start + b.stop) for r, b in zip(roi, local, strict=True)
        )
        self._history.append(_Step(label, box, self._labels[box].copy(), steps))
        self._labels[roi] = after
        return LabelUpdate(label, box, self._labels[box].copy())

    def clear(self, label: int) -> LabelUpdate:
        """Remove object ``label`` from the label map and forget its prompts (undoable)."""
        label = self._check_label(label)
        self.discard_pending(label)
        after = np.where(self._labels == label, 0, self._labels).astype(np.uint8)
        box = changed_box(self._labels, after)
        session = self.session(label)
        session.set_mask(np.zeros(self.shape, dtype=bool))
        self._history.append(_Step(label, box, self._labels[box].copy(), 1))
        self._labels = after
        return LabelUpdate(label, box, self._labels[box].copy())

    def restore(self, label: int, mask: npt.ArrayLike) -> LabelUpdate:
        """Set object ``label`` to ``mask`` (e.g. a model's class), keeping its prompts' history.

        Voxels of ``mask`` held by another label stay theirs unless ``overwrite``; voxels of
        ``label`` outside ``mask`` become background. Undoable.
        """
        label = self._check_label(label)
        wanted = np.asarray(mask, dtype=bool)
        if wanted.shape != self.shape:
            raise GeometryError(f"mask shape {wanted.shape} differs from image {self.shape}")
        self.discard_pending(label)
        after = np.where(self._labels == label, 0, self._labels).astype(np.uint8)
        after[wanted if self.overwrite else wanted & (after == 0)] = label
        box = changed_box(self._labels, after)
        self.session(label).set_mask(after == label)
        self._history.append(_Step(label, box, self._labels[box].copy(), 1))
        self._labels = after
        return LabelUpdate(label, box, self._labels[box].copy())

    def add_model_class(self, label: int, model: LabelModel, class_name: str | int) -> LabelUpdate:
        """Start object ``label`` from one class of a trained model, named as the model names it.

        The model predicts the image once per session (its label map is kept for the other
        classes); the class's mask then becomes object ``label`` as :meth:`restore` sets it, and
        prompts on ``label`` refine it. Undoable.

        Parameters
        ----------
        label : int
            Label value of the object in this session's label map (1-255); it need not be the
            model's value for the class.
        model : Predictor
            A :class:`medseg.infer.Predictor` on a trained model folder (same image channels).
        class_name : str or int
            A foreground class of the model: its name (``model.model.labels`` key) or value.

        Raises
        ------
        ConfigError
            The model has no such class.
        """
        names: dict[str, int] = dict(model.model.labels)  # type: ignore[attr-defined]
        if isinstance(class_name, str):
            if class_name not in names:
                raise ConfigError(
                    f"the model has no class named {class_name!r}; its classes: {sorted(names)}"
                )
            value = names[class_name]
        elif class_name in names.values():
            value = int(class_name)
        else:
            raise ConfigError(f"the model has no class value {class_name!r}; its classes: {names}")
        known = [labels for seen, labels in self._model_maps if seen is model]
        if not known:
            predicted = model.predict_image(self.image).labels.array[0]  # type: ignore[attr-defined]
            known = [np.asarray(predicted).astype(np.uint8)]
            self._model_maps.append((model, known[0]))
        return self.restore(label, known[0] == value)

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    def undo(self) -> LabelUpdate | None:
        """Undo the most recent edit of any object; None when there is nothing to undo."""
        if not self._history:
            return None
        step = self._history.pop()
        session = self._sessions[step.label]
        for _ in range(step.session_steps):
            session.undo()
        self._labels[step.box] = step.before
        return LabelUpdate(step.label, step.box, self._labels[step.box].copy())

    def mask(self, label: int) -> BoolArray:
        """Boolean mask of one label value in the current label map."""
        return self._labels == self._check_label(label)
