"""Synthetic H&E-like whole-slide images, written tile by tile as pyramidal tiled TIFFs.

The slide is a deterministic function of level-0 coordinates, so every pyramid level is rendered
directly (never downsampled from a full-resolution array) and a 60 000 x 60 000 slide is written
with a few megabytes of memory. It holds white background, pink textured tissue with purple
nuclei, denser "tumour" regions (darker, more and larger nuclei) and blue/green pen strokes.
:meth:`SyntheticSlide.truth` gives the matching ground truth at any level.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg._atomic import atomic_path
from medseg.errors import ConfigError

BACKGROUND_RGB = (242, 242, 240)
_STROMA = np.array([232.0, 160.0, 196.0])
_NUCLEUS = np.array([86.0, 44.0, 128.0])
_TUMOUR_NUCLEUS = np.array([60.0, 28.0, 104.0])
_PENS = (np.array([40.0, 70.0, 180.0]), np.array([40.0, 140.0, 70.0]))
#: Ground-truth label values of :meth:`SyntheticSlide.truth`.
TRUTH_LABELS = {"background": 0, "tissue": 1, "tumour": 2, "pen": 3}
_GRID = 64  # level-0 pixels per node of the smooth tissue/tumour fields
_CELL = 24  # level-0 pixels per nucleus cell


@dataclass(frozen=True, kw_only=True)
class SyntheticSlideSpec:
    """Parameters of a synthetic slide.

    Attributes
    ----------
    shape : tuple of 2 int
        Level-0 ``(height, width)`` in pixels.
    mpp : float or None
        Microns per pixel written into the TIFF; ``None`` writes no resolution (to test the
        missing-mpp warning).
    tile : int
        TIFF tile edge in pixels (multiple of 16).
    seed : int
        Seed of the tissue layout, nuclei and pen strokes.
    tissue_quantile : float
        Fraction of the smooth tissue field left as background (higher = less tissue).
    tumour_quantile : float
        Fraction of the tumour field that is not tumour.
    pen_strokes : int
        Number of pen strokes (alternating blue and green).
    compression : str
        ``"jpeg"`` (small files, needs imagecodecs) or ``"zlib"`` (lossless).
    """

    shape: tuple[int, int] = (4096, 4096)
    mpp: float | None = 0.5
    tile: int = 512
    seed: int = 0
    tissue_quantile: float = 0.7
    tumour_quantile: float = 0.75
    pen_strokes: int = 2
    compression: str = "jpeg"


class SyntheticSlide:
    """Procedural slide: render any region of any downsample, and its ground truth."""

    def __init__(self, spec: SyntheticSlideSpec) -> None:
        if spec.tile % 16 or spec.tile <= 0:
            raise ConfigError(f"tile must be a positive multiple of 16, got {spec.tile}")
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        height, width = spec.shape
        grid = (height // _GRID + 2, width // _GRID + 2)
        sigma = max(grid) / 10.0
        yy, xx = np.meshgrid(
            np.linspace(-1, 1, grid[0]), np.linspace(-1, 1, grid[1]), indexing="ij"
        )
        vignette = 1.0 - 0.9 * np.clip(np.hypot(yy, xx) - 0.35, 0.0, None)
        tissue = ndimage.gaussian_filter(rng.standard_normal(grid), sigma, mode="wrap")
        tissue = (tissue - tissue.mean()) / (tissue.std() + 1e-9) + 2.0 * vignette
        self._tissue = tissue.astype(np.float32)
        self._tissue_cut = float(np.quantile(tissue, spec.tissue_quantile))
        tumour = ndimage.gaussian_filter(rng.standard_normal(grid), sigma / 2.0, mode="wrap")
        self._tumour = tumour.astype(np.float32)
        self._tumour_cut = float(np.quantile(tumour, spec.tumour_quantile))
        self._pens = []
        for index in range(spec.pen_strokes):
            points = rng.uniform(0.05, 0.95, size=(3, 2)) * np.array([height, width])
            self._pens.append((points, _PENS[index % len(_PENS)]))
        self._pen_half_width = max(height, width) / 120.0
        self._hash_seed = np.uint64(spec.seed * 2654435761 + 97)

    def _field(
        self,
        field: npt.NDArray[np.float32],
        ys: npt.NDArray[np.float64],
        xs: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float32]:
        """Bilinear samples of a grid field at level-0 coordinates ``ys`` x ``xs`` (outer)."""
        gy, gx = ys / _GRID, xs / _GRID
        y0 = np.clip(np.floor(gy).astype(int), 0, field.shape[0] - 2)
        x0 = np.clip(np.floor(gx).astype(int), 0, field.shape[1] - 2)
        fy = (gy - y0)[:, None].astype(np.float32)
        fx = (gx - x0)[None, :].astype(np.float32)
        top = field[y0][:, x0] * (1 - fx) + field[y0][:, x0 + 1] * fx
        bottom = field[y0 + 1][:, x0] * (1 - fx) + field[y0 + 1][:, x0 + 1] * fx
        return top * (1 - fy) + bottom * fy

    def _hash(
        self, iy: npt.NDArray[np.int64], ix: npt.NDArray[np.int64], salt: int
    ) -> npt.NDArray[np.float64]:
        """Uniform [0, 1) numbers, one per (cell row, cell column), stable across tiles."""
        with np.errstate(over="ignore"):
            h = (iy.astype(np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15)) ^ (
                ix.astype(np.uint64)[None, :] * np.uint64(0xC2B2AE3D27D4EB4F)
            )
            h ^= self._hash_seed + np.uint64(salt * 0x165667B19E3779F9)
            h ^= h >> np.uint64(31)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(29)
        return (h >> np.uint64(11)).astype(np.float64) / float(2**53)

    def _layers(
        self, downsample: float, start: tuple[int, int], size: tuple[int, int]
    ) -> tuple[
        npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.float32], npt.NDArray[np.int8]
    ]:
        """Tissue mask, tumour mask, nucleus coverage in [0, 1] and pen index (-1 none)."""
        ys = (start[0] + np.arange(size[0]) + 0.5) * downsample
        xs = (start[1] + np.arange(size[1]) + 0.5) * downsample
        tissue = self._field(self._tissue, ys, xs) > self._tissue_cut
        tumour = tissue & (self._field(self._tumour, ys, xs) > self._tumour_cut)
        iy, ix = (ys // _CELL).astype(np.int64), (xs // _CELL).astype(np.int64)
        uy, ry = np.unique(iy, return_inverse=True)
        ux, rx = np.unique(ix, return_inverse=True)
        present = self._hash(uy, ux, 1)[ry][:, rx]
        if downsample >= 4:  # nuclei below ~2 px: render their expected area fraction
            cover = np.where(tumour, 0.85 * 0.30, 0.25 * 0.15).astype(np.float32)
        else:
            radius = np.where(tumour, 6.5, 4.5) + 1.5 * self._hash(uy, ux, 2)[ry][:, rx]
            slack = _CELL / 2 - radius
            cy = (iy[:, None] + 0.5) * _CELL + (self._hash(uy, ux, 3)[ry][:, rx] - 0.5) * 2 * slack
            cx = (ix[None, :] + 0.5) * _CELL + (self._hash(uy, ux, 4)[ry][:, rx] - 0.5) * 2 * slack
            inside = np.hypot(ys[:, None] - cy, xs[None, :] - cx) < radius
            cover = (inside & (present < np.where(tumour, 0.85, 0.25))).astype(np.float32)
        cover *= tissue
        pen = np.full(size, -1, dtype=np.int8)
        for index, (points, _) in enumerate(self._pens):
            near = self._near_polyline(points, ys, xs)
            if near is not None:
                pen[near] = index
        return tissue, tumour, cover, pen

    def _near_polyline(
        self,
        points: npt.NDArray[np.float64],
        ys: npt.NDArray[np.float64],
        xs: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.bool_] | None:
        half = self._pen_half_width
        lo = points.min(axis=0) - half
        hi = points.max(axis=0) + half
        if ys[-1] < lo[0] or ys[0] > hi[0] or xs[-1] < lo[1] or xs[0] > hi[1]:
            return None
        near = np.zeros((ys.size, xs.size), dtype=bool)
        py, px = ys[:, None], xs[None, :]
        for (ay, ax), (by, bx) in itertools.pairwise(points):
            if (
                min(ay, by) - half > ys[-1] or max(ay, by) + half < ys[0]
                or min(ax, bx) - half > xs[-1] or max(ax, bx) + half < xs[0]
            ):  # fmt: skip
                continue
            dy, dx = by - ay, bx - ax
            t = np.clip(((py - ay) * dy + (px - ax) * dx) / (dy * dy + dx * dx), 0.0, 1.0)
            near |= np.hypot(py - ay - t * dy, px - ax - t * dx) < half
        return near if near.any() else None

    def render(
        self, downsample: float, start: tuple[int, int], size: tuple[int, int]
    ) -> npt.NDArray[np.uint8]:
        """RGB pixels of a region at a downsample.

        Parameters
        ----------
        downsample : float
            Level-0 pixels per output pixel.
        start, size : tuple of 2 int
            Region ``(y, x)`` and ``(height, width)`` in output pixels.

        Returns
        -------
        ndarray of uint8, shape (height, width, 3)
            Interleaved RGB, as TIFF stores it.
        """
        tissue, tumour, cover, pen = self._layers(downsample, start, size)
        ys = ((start[0] + np.arange(size[0]) + 0.5) * downsample).astype(np.float32)
        xs = ((start[1] + np.arange(size[1]) + 0.5) * downsample).astype(np.float32)
        texture = (0.08 * np.cos(ys / 29.0))[:, None] * np.sin(
            xs[None, :] / 37.0 + (2.0 * np.sin(ys / 53.0))[:, None]
        )
        shade = np.where(tissue, 1.0 + texture - 0.12 * tumour, 0.0).astype(np.float32)
        glass = np.float32(1.0) - tissue
        keep = np.float32(1.0) - cover
        rgb = np.empty((*size, 3), dtype=np.float32)
        for channel in range(3):
            nucleus = np.where(tumour, _TUMOUR_NUCLEUS[channel], _NUCLEUS[channel])
            base = _STROMA[channel] * shade + BACKGROUND_RGB[channel] * glass
            rgb[..., channel] = base * keep + nucleus * cover
        for index, (_, colour) in enumerate(self._pens):
            mask = pen == index
            if mask.any():
                rgb[mask] = 0.25 * rgb[mask] + 0.75 * colour
        return np.clip(rgb, 0, 255).astype(np.uint8)

    def truth(
        self, downsample: float, start: tuple[int, int], size: tuple[int, int]
    ) -> npt.NDArray[np.uint8]:
        """Ground-truth labels (:data:`TRUTH_LABELS`) of a region, shape ``(height, width)``.

        Pen wins over tumour, tumour over tissue.
        """
        tissue, tumour, _, pen = self._layers(downsample, start, size)
        labels = tissue.astype(np.uint8)
        labels[tumour] = TRUTH_LABELS["tumour"]
        labels[pen >= 0] = TRUTH_LABELS["pen"]
        return labels

    def _is_blank(self, downsample: float, start: tuple[int, int], size: tuple[int, int]) -> bool:
        """True when a region is certainly background (coarse field check, no pen nearby)."""
        y0 = max(int(start[0] * downsample) // _GRID - 1, 0)
        x0 = max(int(start[1] * downsample) // _GRID - 1, 0)
        y1 = int((start[0] + size[0]) * downsample) // _GRID + 3
        x1 = int((start[1] + size[1]) * downsample) // _GRID + 3
        if self._tissue[y0:y1, x0:x1].max() > self._tissue_cut:
            return False
        ys = (start[0] + np.array([0.0, size[0]])) * downsample
        xs = (start[1] + np.array([0.0, size[1]])) * downsample
        half = self._pen_half_width
        for points, _ in self._pens:
            lo, hi = points.min(axis=0) - half, points.max(axis=0) + half
            if not (ys[1] < lo[0] or ys[0] > hi[0] or xs[1] < lo[1] or xs[0] > hi[1]):
                return False
        return True

    def level_shapes(self) -> list[tuple[int, int]]:
        """``(height, width)`` of each pyramid level (factor 2) down to one tile."""
        shapes = [self.spec.shape]
        while max(shapes[-1]) > self.spec.tile:
            h, w = shapes[-1]
            shapes.append((math.ceil(h / 2), math.ceil(w / 2)))
        return shapes

    def _tiles(self, level: int, shape: tuple[int, int]) -> Iterator[npt.NDArray[np.uint8]]:
        tile = self.spec.tile
        blank = np.empty((tile, tile, 3), dtype=np.uint8)
        blank[:] = BACKGROUND_RGB
        downsample = float(2**level)
        for y in range(0, shape[0], tile):
            for x in range(0, shape[1], tile):
                if self._is_blank(downsample, (y, x), (tile, tile)):
                    yield blank
                else:
                    yield self.render(downsample, (y, x), (tile, tile))

    def write(self, path: Path | str) -> Path:
        """Write the slide as a tiled pyramidal TIFF (levels as SubIFDs), atomically.

        Returns
        -------
        Path
            ``path``. Peak memory is a few tiles, whatever the slide size.

        Raises
        ------
        ConfigError
            JPEG compression without imagecodecs (the ``wsi`` extra) installed.
        """
        import tifffile

        if self.spec.compression == "jpeg":
            try:
                import imagecodecs  # noqa: F401
            except ImportError as err:
                raise ConfigError(
                    "writing a JPEG-compressed slide needs imagecodecs; install it with: "
                    "pip install 'medseg[wsi]'"
                ) from err
        path = Path(path)
        shapes = self.level_shapes()
        tile = self.spec.tile
        options: dict[str, object] = {
            "tile": (tile, tile),
            "photometric": "rgb",
            "compression": self.spec.compression,
            "dtype": np.uint8,
        }
        if self.spec.compression == "jpeg":
            options["compressionargs"] = {"level": 85}
        with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True) as tif:
            for level, shape in enumerate(shapes):
                extra: dict[str, object] = {}
                if level == 0:
                    extra["subifds"] = len(shapes) - 1
                    extra["software"] = "medseg synthetic slide"
                else:
                    extra["subfiletype"] = 1
                if self.spec.mpp is not None:
                    per_cm = 1e4 / (self.spec.mpp * 2**level)
                    extra["resolution"] = (per_cm, per_cm)
                    extra["resolutionunit"] = "CENTIMETER"
                tif.write(self._tiles(level, shape), shape=(*shape, 3), **options, **extra)
        return path


def write_synthetic_slide(
    path: Path | str, spec: SyntheticSlideSpec | None = None
) -> SyntheticSlide:
    """Write a synthetic slide to ``path`` and return its renderer (for ground truth)."""
    slide = SyntheticSlide(spec or SyntheticSlideSpec())
    slide.write(path)
    return slide
