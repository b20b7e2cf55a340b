"""Prompts a user gives an interactive engine: clicks, boxes and scribbles.

Coordinates are integer voxel indices in array order, ``(z, y, x)`` for 3D images and
``(y, x)`` for 2D images, over the full image. A prompt drawn on a 2D view of a 3D image is
built with the ``on_slice`` constructors: ``axis`` is the array axis the view is orthogonal to
(0 axial, 1 coronal, 2 sagittal for an RAS-like volume) and ``index`` the slice along it; the
in-plane coordinates are the two remaining axes in increasing order. A click on sagittal slice
``x = 40`` at in-plane ``(z, y) = (10, 20)`` is therefore the voxel ``(10, 20, 40)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage.draw import line_nd

from medseg._typing import BoolArray, IntArray
from medseg.errors import GeometryError


def _full_point(axis: int, index: int, in_plane: Sequence[float]) -> tuple[int, ...]:
    if len(in_plane) != 2:
        raise GeometryError(f"an in-plane point needs 2 coordinates, got {tuple(in_plane)}")
    if axis not in (0, 1, 2):
        raise GeometryError(f"slice axis must be 0, 1 or 2, got {axis}")
    point = [int(np.rint(c)) for c in in_plane]
    point.insert(axis, int(index))
    return tuple(point)


@dataclass(frozen=True)
class Click:
    """A positive (object) or negative (background) click on one voxel.

    Parameters
    ----------
    point : tuple of int
        Voxel index in array order, (z, y, x) or (y, x).
    positive : bool
        True for an object click, False for a background click.
    """

    point: tuple[int, ...]
    positive: bool = True

    @classmethod
    def on_slice(
        cls, axis: int, index: int, in_plane: Sequence[float], *, positive: bool = True
    ) -> Click:
        """A click drawn on slice ``index`` of ``axis`` of a 3D image at in-plane coordinates."""
        return cls(_full_point(axis, index, in_plane), positive)

    def bounds(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Inclusive (low, high) voxel bounds."""
        return self.point, self.point

    def shifted(self, offset: Sequence[int]) -> Click:
        """The same click with ``offset`` subtracted (full image -> region of interest)."""
        return replace(
            self, point=tuple(int(p - o) for p, o in zip(self.point, offset, strict=True))
        )


@dataclass(frozen=True)
class Box:
    """An axis-aligned box around the object, corners inclusive.

    A box drawn on one slice of a 3D image has ``lo[axis] == hi[axis]``; a 3D box (for example
    a 2D box on the median slice plus the object's extent along the slice axis) spans several
    slices. Inside is object-or-unknown, outside is background.

    Parameters
    ----------
    lo, hi : tuple of int
        Inclusive corner voxel indices in array order; ``lo <= hi`` on every axis.
    """

    lo: tuple[int, ...]
    hi: tuple[int, ...]

    def __post_init__(self) -> None:
        lo = tuple(int(v) for v in self.lo)
        hi = tuple(int(v) for v in self.hi)
        if len(lo) != len(hi) or any(a > b for a, b in zip(lo, hi, strict=True)):
            raise GeometryError(f"box corners must satisfy lo <= hi, got lo={lo} hi={hi}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    @classmethod
    def on_slice(cls, axis: int, index: int, lo: Sequence[float], hi: Sequence[float]) -> Box:
        """A 2D box drawn on slice ``index`` of ``axis`` of a 3D image (in-plane corners)."""
        return cls(_full_point(axis, index, lo), _full_point(axis, index, hi))

    @property
    def plane_axis(self) -> int | None:
        """Axis of the slice the box was drawn on (3D box with one slice of extent), else None."""
        if len(self.lo) != 3:
            return None
        flat = [a for a in range(3) if self.lo[a] == self.hi[a]]
        return flat[0] if len(flat) == 1 else None

    def bounds(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.lo, self.hi

    def shifted(self, offset: Sequence[int]) -> Box:
        return Box(
            tuple(v - o for v, o in zip(self.lo, offset, strict=True)),
            tuple(v - o for v, o in zip(self.hi, offset, strict=True)),
        )


@dataclass(frozen=True, eq=False)
class Scribble:
    """A painted stroke: the voxels it covers and whether it marks object or background.

    Build one from a polyline with :meth:`from_polyline` (or :meth:`on_slice` for a stroke drawn
    on a 2D view of a 3D image) or from a painted mask with :meth:`from_mask`.

    Parameters
    ----------
    voxels : ndarray of int, shape (N, D)
        Covered voxel indices in array order.
    positive : bool
        True for object, False for background.
    """

    voxels: IntArray
    positive: bool = True

    def __post_init__(self) -> None:
        voxels = np.asarray(self.voxels, dtype=np.int64)
        if voxels.ndim != 2 or voxels.shape[0] == 0:
            raise GeometryError(
                f"a scribble needs a non-empty (N, D) voxel list, got {voxels.shape}"
            )
        voxels.setflags(write=False)
        object.__setattr__(self, "voxels", voxels)

    @classmethod
    def from_mask(cls, mask: npt.ArrayLike, *, positive: bool = True) -> Scribble:
        """A scribble covering every True voxel of ``mask`` (full image shape)."""
        return cls(np.argwhere(np.asarray(mask, dtype=bool)), positive)

    @classmethod
    def from_polyline(
        cls,
        points: Sequence[Sequence[float]],
        *,
        shape: Sequence[int],
        width: float = 3.0,
        positive: bool = True,
        plane_axis: int | None = None,
    ) -> Scribble:
        """Rasterise a polyline of voxel-index points with a brush ``width`` (voxels).

        ``plane_axis`` thickens the stroke only within the slice it was drawn on; without it
        the brush is a ball. Voxels outside ``shape`` are dropped.
        """
        pts = np.asarray(points, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != len(shape) or len(pts) == 0:
            raise GeometryError(
                f"polyline points must be (N, {len(shape)}) for an image of shape "
                f"{tuple(shape)}, got {pts.shape}"
            )
        ndim = len(shape)
        radius = max(int(np.ceil((width - 1) / 2)), 0)
        lo = np.floor(pts.min(axis=0)).astype(int) - radius - 1
        hi = np.ceil(pts.max(axis=0)).astype(int) + radius + 2
        canvas = np.zeros(tuple(hi - lo), dtype=bool)
        local = pts - lo
        if len(local) == 1:
            canvas[tuple(np.round(local[0]).astype(int))] = True
        for a, b in itertools.pairwise(local):
            canvas[line_nd(a, b, endpoint=True, integer=True)] = True
        if radius:
            grid = np.indices((2 * radius + 1,) * ndim) - radius
            if plane_axis is not None:
                keep = grid[plane_axis] == 0
            else:
                keep = np.ones(grid.shape[1:], dtype=bool)
            footprint = ((grid**2).sum(axis=0) <= (width / 2) ** 2) & keep
            canvas = ndimage.binary_dilation(canvas, structure=footprint)
        voxels = np.argwhere(canvas) + lo
        inside = np.all((voxels >= 0) & (voxels < np.asarray(shape)), axis=1)
        if not inside.any():
            raise GeometryError(f"scribble lies outside the image of shape {tuple(shape)}")
        return cls(voxels[inside], positive)

    @classmethod
    def on_slice(
        cls,
        axis: int,
        index: int,
        points: Sequence[Sequence[float]],
        *,
        shape: Sequence[int],
        width: float = 3.0,
        positive: bool = True,
    ) -> Scribble:
        """A polyline drawn on slice ``index`` of ``axis`` of a 3D image (in-plane points)."""
        full = [_full_point(axis, index, p) for p in points]
        return cls.from_polyline(full, shape=shape, width=width, positive=positive, plane_axis=axis)

    def bounds(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return tuple(int(v) for v in self.voxels.min(0)), tuple(int(v) for v in self.voxels.max(0))

    def shifted(self, offset: Sequence[int]) -> Scribble:
        return Scribble(self.voxels - np.asarray(offset, dtype=np.int64), self.positive)


Prompt = Click | Box | Scribble


@dataclass(frozen=True)
class PromptMaps:
    """Prompts rasterised on a voxel grid, each of shape ``(Z, Y, X)`` or ``(Y, X)``.

    ``box`` is True inside every box (False everywhere when there is none, see ``has_box``),
    ``positive`` / ``negative`` mark object / background clicks and scribbles.
    """

    box: BoolArray
    positive: BoolArray
    negative: BoolArray
    has_box: bool


def render_prompts(prompts: Sequence[Prompt], shape: Sequence[int]) -> PromptMaps:
    """Rasterise prompts given in the coordinates of a grid of ``shape``.

    Parts outside the grid are clipped away. A click marks one voxel; engines thicken it as
    they need.
    """
    shape = tuple(int(s) for s in shape)
    box = np.zeros(shape, dtype=bool)
    pos = np.zeros(shape, dtype=bool)
    neg = np.zeros(shape, dtype=bool)
    has_box = False
    upper = np.asarray(shape)
    for prompt in prompts:
        if isinstance(prompt, Box):
            lo = np.clip(prompt.lo, 0, upper)
            hi = np.clip(np.asarray(prompt.hi) + 1, 0, upper)
            box[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
            has_box = True
        elif isinstance(prompt, Click):
            p = np.asarray(prompt.point)
            if np.all((p >= 0) & (p < upper)):
                (pos if prompt.positive else neg)[tuple(p)] = True
        else:
            v = prompt.voxels
            v = v[np.all((v >= 0) & (v < upper), axis=1)]
            (pos if prompt.positive else neg)[tuple(v.T)] = True
    return PromptMaps(box=box, positive=pos, negative=neg, has_box=has_box)
