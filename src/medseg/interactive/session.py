"""An interactive segmentation session: prompt history, current mask, region of interest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medseg._typing import BoolArray, FloatArray
from medseg.errors import GeometryError
from medseg.interactive.engine import Engine, default_engine
from medseg.interactive.prompts import Box, Click, Prompt, Scribble
from medseg.io import Image


@dataclass(frozen=True)
class Prediction:
    """Result of :meth:`Session.predict` on the full image grid.

    ``mask`` is bool, ``probabilities`` float32 in [0, 1] (outside the region of interest it
    repeats the previous mask), both of shape (Z, Y, X) or (Y, X). ``roi`` holds the slices of
    the region the engine worked on.
    """

    mask: BoolArray
    probabilities: FloatArray
    roi: tuple[slice, ...]


def region_of_interest(
    prompts: Sequence[Prompt],
    mask: BoolArray | None,
    shape: Sequence[int],
    *,
    margin: float = 0.25,
    min_margin: int = 8,
    min_size: int = 64,
) -> tuple[slice, ...]:
    """Box around all prompts and the current mask, padded, at least ``min_size`` per axis.

    Each side grows by ``max(margin * extent, min_margin)`` voxels; an axis shorter than
    ``min_size`` voxels grows symmetrically; the result is clipped to the image ``shape``.
    """
    shape_arr = np.asarray(shape)
    lows, highs = [], []
    for prompt in prompts:
        lo, hi = prompt.bounds()
        lows.append(np.clip(lo, 0, shape_arr - 1))
        highs.append(np.clip(hi, 0, shape_arr - 1))
    if mask is not None and mask.any():
        coords = np.argwhere(mask)
        lows.append(coords.min(0))
        highs.append(coords.max(0))
    if not lows:
        return tuple(slice(0, s) for s in shape)
    lo = np.min(lows, axis=0).astype(float)
    hi = np.max(highs, axis=0).astype(float) + 1
    pad = np.maximum(margin * (hi - lo), min_margin)
    lo, hi = lo - pad, hi + pad
    short = np.maximum(min_size - (hi - lo), 0)
    lo, hi = lo - short / 2, hi + short / 2
    lo = np.clip(np.floor(lo), 0, shape_arr).astype(int)
    hi = np.clip(np.ceil(hi), 0, shape_arr).astype(int)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


class Session:
    """Interactive segmentation of one object in one image.

    Prompts accumulate; :meth:`predict` runs the engine on a region of interest around all
    prompts (and the current mask) and pastes the result into the full-size mask, leaving the
    rest untouched. :meth:`undo` removes the last action and restores the mask from before it.

    Parameters
    ----------
    image : Image or ndarray
        An :class:`medseg.io.Image` (channel first) or a single-channel array of shape
        (Z, Y, X) or (Y, X) (unit spacing).
    engine : Engine, optional
        The segmenter, e.g. :class:`~medseg.interactive.classical.RandomWalkerEngine`;
        default the universal model shipped with medseg
        (:func:`~medseg.interactive.engine.default_engine`), which needs no training.
    margin, min_margin, min_size
        Region-of-interest rule, see :func:`region_of_interest`.
    """

    def __init__(
        self,
        image: Image | npt.NDArray[np.generic],
        engine: Engine | None = None,
        *,
        margin: float = 0.25,
        min_margin: int = 8,
        min_size: int = 64,
    ) -> None:
        if not isinstance(image, Image):
            array = np.asarray(image)
            if array.ndim not in (2, 3):
                raise GeometryError(f"expected a (Z, Y, X) or (Y, X) array, got {array.shape}")
            image = Image.from_array(array[None])
        self.image = image
        self.engine = engine if engine is not None else default_engine()
        self._roi_rule = {"margin": margin, "min_margin": min_margin, "min_size": min_size}
        self._prompts: list[Prompt] = []
        self._history: list[tuple[Prompt | None, BoolArray, bool]] = []
        self._mask = np.zeros(image.spatial_shape, dtype=bool)
        self._has_prediction = False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.image.spatial_shape

    @property
    def prompts(self) -> tuple[Prompt, ...]:
        return tuple(self._prompts)

    @property
    def mask(self) -> BoolArray:
        """The current mask (a copy), shape (Z, Y, X) or (Y, X)."""
        return self._mask.copy()

    def _check_point(self, point: tuple[int, ...]) -> None:
        if len(point) != len(self.shape) or not all(
            0 <= p < s for p, s in zip(point, self.shape, strict=True)
        ):
            raise GeometryError(f"point {point} lies outside the image of shape {self.shape}")

    def _check_slice_args(self, axis: int | None, index: int | None) -> None:
        if (axis is None) != (index is None):
            raise GeometryError("give both axis and index for a prompt drawn on a slice")
        if axis is not None and len(self.shape) != 3:
            raise GeometryError("axis/index prompts need a 3D image")

    def _push(self, prompt: Prompt | None) -> None:
        self._history.append((prompt, self._mask.copy(), self._has_prediction))
        if prompt is not None:
            self._prompts.append(prompt)

    def add_click(
        self,
        point: Sequence[float],
        *,
        positive: bool = True,
        axis: int | None = None,
        index: int | None = None,
    ) -> Click:
        """Add a click at a voxel (array order), or at in-plane ``point`` on slice ``index``
        of ``axis``."""
        self._check_slice_args(axis, index)
        if axis is not None:
            click = Click.on_slice(axis, index, point, positive=positive)
        else:
            click = Click(tuple(int(np.rint(p)) for p in point), positive)
        self._check_point(click.point)
        self._push(click)
        return click

    def add_box(
        self,
        lo: Sequence[float],
        hi: Sequence[float],
        *,
        axis: int | None = None,
        index: int | None = None,
    ) -> Box:
        """Add a box with inclusive corners (array order), or an in-plane box on a slice."""
        self._check_slice_args(axis, index)
        box = Box.on_slice(axis, index, lo, hi) if axis is not None else Box(tuple(lo), tuple(hi))
        inside = all(a < s and b >= 0 for a, b, s in zip(box.lo, box.hi, self.shape, strict=False))
        if len(box.lo) != len(self.shape) or not inside:
            raise GeometryError(f"box {box} lies outside the image of shape {self.shape}")
        self._push(box)
        return box

    def add_scribble(
        self,
        points: Sequence[Sequence[float]] | None = None,
        *,
        mask: npt.ArrayLike | None = None,
        positive: bool = True,
        width: float = 3.0,
        axis: int | None = None,
        index: int | None = None,
    ) -> Scribble:
        """Add a polyline stroke of ``width`` voxels, or a painted ``mask`` of the image shape."""
        self._check_slice_args(axis, index)
        if (points is None) == (mask is None):
            raise GeometryError("give either polyline points or a painted mask, not both")
        if mask is not None:
            painted = np.asarray(mask, dtype=bool)
            if painted.shape != self.shape:
                raise GeometryError(
                    f"scribble mask {painted.shape} differs from image {self.shape}"
                )
            scribble = Scribble.from_mask(painted, positive=positive)
        elif axis is not None:
            scribble = Scribble.on_slice(
                axis, index, points, shape=self.shape, width=width, positive=positive
            )
        else:
            scribble = Scribble.from_polyline(
                points, shape=self.shape, width=width, positive=positive
            )
        self._push(scribble)
        return scribble

    def set_mask(self, mask: npt.ArrayLike) -> None:
        """Start from an existing mask (e.g. a model's prediction) that the prompts correct."""
        new = np.asarray(mask).astype(bool)
        if new.shape != self.shape:
            raise GeometryError(f"mask shape {new.shape} differs from image {self.shape}")
        self._push(None)
        self._mask = new
        self._has_prediction = True

    def undo(self) -> None:
        """Remove the last prompt or mask and restore the mask from before it."""
        if not self._history:
            return
        prompt, before, had_prediction = self._history.pop()
        if prompt is not None:
            self._prompts.pop()
        self._mask = before
        self._has_prediction = had_prediction

    def reset(self) -> None:
        """Forget every prompt and mask."""
        self._prompts.clear()
        self._history.clear()
        self._mask = np.zeros(self.shape, dtype=bool)
        self._has_prediction = False

    def predict(self) -> Prediction:
        """Run the engine on the region of interest and update the mask."""
        roi = region_of_interest(self._prompts, self._mask, self.shape, **self._roi_rule)
        offset = tuple(s.start for s in roi)
        local = [p.shifted(offset) for p in self._prompts]
        prev = self._mask[roi] if self._has_prediction else None
        crop = self.image.array[(slice(None), *roi)]
        prob = self.engine.predict(crop, local, prev, spacing=self.image.spacing)
        probabilities = self._mask.astype(np.float32)
        probabilities[roi] = prob
        self._mask = probabilities >= 0.5
        self._has_prediction = True
        return Prediction(mask=self._mask.copy(), probabilities=probabilities, roi=roi)
