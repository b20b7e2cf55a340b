"""Text as a prompt: a phrase selects a region of the session's label map, the engine refines it.

The phrase is resolved by :mod:`medseg.text` against the session's current label map (a model's
prediction, a reference, or earlier corrections) with the dataset's class names. The selected
voxels become the starting mask of a session of their own, and their bounding box a box prompt
for the promptable engine, which refines the mask inside it; the result replaces the selected
voxels of the object being edited (its other voxels, e.g. the other lesions of the class, stay).
Clicks then correct it as usual, and one undo takes the whole text prompt back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg.interactive.engine import Engine
from medseg.interactive.multi import LabelUpdate, MultiSession
from medseg.interactive.session import Session
from medseg.io import Image
from medseg.text import QueryError, Selection, build_scene, find


@dataclass(frozen=True)
class TextPromptResult:
    """The object edited, what the phrase selected, and the label-map update.

    ``edited`` says whether the session's history got a step (one undo takes it back), even
    when the refined mask equals what was there.
    """

    label: int
    selection: Selection
    update: LabelUpdate
    refined: bool
    edited: bool


def text_prompt(
    multi: MultiSession,
    phrase: str,
    names: dict[int, str],
    *,
    label: int | None = None,
    refine: bool = True,
    engine: Engine | None = None,
    geometry: Image | None = None,
) -> TextPromptResult:
    """Apply a phrase to a multi-object session.

    Parameters
    ----------
    multi : MultiSession
        The session; its label map ``(Z, Y, X)`` is what the phrase is resolved against.
    phrase : str
        E.g. ``"the largest lesion on the left"`` (grammar in docs/text.md).
    names : dict of int to str
        Label value -> class name.
    label : int, optional
        The object to edit; default the class of the selection (which must then be one class).
        Another value moves the selected voxels to that object.
    refine : bool
        Start a session of the selected region with its bounding box as a box prompt and let
        ``engine`` refine it; the result replaces the selected voxels (one undoable step, the
        object's other voxels kept).
    engine : Engine, optional
        The promptable engine; default :func:`~medseg.interactive.engine.default_engine`.
    geometry : Image, optional
        Whose spacing, origin and direction place the voxels in patient space; default the
        session's image.

    Returns
    -------
    TextPromptResult

    Raises
    ------
    QueryError
        The phrase is not understood, ambiguous, selects nothing, or spans several classes
        without ``label``.
    """
    geometry = geometry if geometry is not None else multi.image
    scene = build_scene(geometry.with_array(multi.labels[None]), names=names)
    selection = find(scene, phrase)
    if not selection.mask.any():
        raise QueryError(
            f"{phrase!r} selects nothing in the current segmentation",
            suggestion="segment the structure first, or name another one",
        )
    classes = sorted({inst.label for inst in selection.instances})
    if label is None:
        if len(classes) != 1:
            raise QueryError(
                f"{phrase!r} selects several classes ({', '.join(names[c] for c in classes)})",
                suggestion="choose the class to edit, or name one class",
            )
        label = classes[0]
    wanted = selection.mask
    if refine:  # the selection as starting mask, its box as prompt, in a session of its own
        where = np.argwhere(selection.mask)
        session = Session(multi.image, engine)
        session.set_mask(selection.mask)
        session.add_box(where.min(axis=0).tolist(), where.max(axis=0).tolist())
        wanted = session.predict().mask
    own = multi.labels == label
    edited = refine or label not in classes or len(classes) > 1
    if edited:
        update = multi.restore(label, (own & ~selection.mask) | wanted)
    else:  # nothing to change: the selection is only explained
        nothing = tuple(slice(0, 0) for _ in multi.shape)
        update = LabelUpdate(label, nothing, np.zeros((0,) * len(multi.shape), np.uint8))
    return TextPromptResult(
        label=label, selection=selection, update=update, refined=refine, edited=edited
    )
