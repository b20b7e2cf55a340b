"""Whole-slide images read lazily by pyramid level (tiffslide, tifffile-based).

A slide is a pyramid: level 0 is full resolution, level ``k`` is reduced by
``downsamples[k]`` (usually 2, 4, 8, ...). Geometry for slides is the microns per pixel
(``mpp``) of level 0 plus the level downsample; every output medseg writes from a slide keeps it.

Coordinates are in array order ``(y, x)`` and in pixels *of the level read*; regions come back
channel-first ``(C, H, W)`` ``uint8`` (C = 3 for RGB slides), as every 2D image in medseg.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import ConfigError, GeometryError, ImageReadError

logger = logging.getLogger(__name__)

#: Assumed microns per pixel when a slide declares none (a 20x scan).
DEFAULT_ASSUMED_MPP = 0.5
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ome.tif", ".ome.tiff", ".ndpi", ".scn", ".bif")


@dataclass(frozen=True, kw_only=True)
class LevelInfo:
    """One pyramid level.

    Attributes
    ----------
    shape : tuple of 2 int
        ``(height, width)`` in pixels of this level.
    downsample : float
        Level-0 pixels per pixel of this level (1.0 for level 0).
    mpp : tuple of 2 float
        Microns per pixel along ``(y, x)`` at this level.
    """

    shape: tuple[int, int]
    downsample: float
    mpp: tuple[float, float]


def _tiled_pages(slide: Any, axes: str) -> list[Any] | None:
    """The first page of every level when all are tiled, interleaved 8-bit (else None: zarr)."""
    if axes not in ("YXS", "YX"):
        return None
    try:
        series = slide.ts_tifffile.series[int(slide.properties["tiffslide.series-index"])]
        pages = [level.pages[0] for level in series.levels]
    except (KeyError, IndexError, AttributeError):
        return None
    for page in pages:
        if not getattr(page, "is_tiled", False) or page.bitspersample != 8:
            return None
        if page.planarconfig != 1 or page.imagedepth != 1:  # 1 = contiguous (interleaved)
            return None
    return pages


def _check_complete(path: Path, tiff: Any) -> None:
    """Raise if any tile or strip of any page points past the end of the file (truncated)."""
    size = path.stat().st_size
    for page in tiff.pages:
        offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        counts = np.asarray(page.databytecounts, dtype=np.int64)
        if offsets.size and int((offsets + counts).max()) > size:
            raise ImageReadError(
                f"{path}: truncated TIFF (page {page.index} has image data past the end of the "
                f"{size}-byte file); copy or download the slide again"
            )
        for sub in page.pages if getattr(page, "pages", None) else ():
            sub_offsets = np.asarray(sub.dataoffsets, dtype=np.int64)
            sub_counts = np.asarray(sub.databytecounts, dtype=np.int64)
            if sub_offsets.size and int((sub_offsets + sub_counts).max()) > size:
                raise ImageReadError(f"{path}: truncated TIFF (pyramid level data past the end)")


#: Slide formats that are never plain images.
_SLIDE_ONLY_SUFFIXES = (".svs", ".ndpi", ".scn", ".bif")
#: A tiled TIFF level with more pixels than this is treated as a slide (64 Mpx, 192 MB RGB).
_SLIDE_PIXELS = 2**26


def looks_like_slide(path: Path | str) -> bool:
    """Whether ``path`` is a whole-slide image rather than an ordinary 2D image.

    True for SVS / NDPI / SCN / BIF files and for TIFFs that hold a pyramid (several
    resolution levels) or one tiled page larger than 64 megapixels; False for everything else,
    unreadable files included (the image reader then reports them).
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(_SLIDE_ONLY_SUFFIXES):
        return True
    if not name.endswith((".tif", ".tiff")) or not path.is_file():
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            series = tiff.series[0]
            page = series.pages[0] if series.pages else tiff.pages[0]
            pixels = int(page.imagelength) * int(page.imagewidth)
            return len(series.levels) > 1 or (bool(page.is_tiled) and pixels > _SLIDE_PIXELS)
    except Exception:  # any unreadable TIFF is "not a slide" here
        return False


class Slide:
    """A whole-slide image opened for lazy, level-wise region reads.

    Parameters
    ----------
    path : path
        Pyramidal TIFF, SVS, OME-TIFF or any format tiffslide reads.
    mpp : float, optional
        Microns per pixel at level 0, overriding the file (isotropic).
    assume_mpp : float
        Used, with a warning that names the value, when the file declares no resolution.
    cache_mb : float
        Decoded tiles kept in memory (least recently used dropped first). Neighbouring windows
        share tiles, so a cache of a few rows of tiles decodes each tile about once.

    Raises
    ------
    ImageReadError
        Missing, unreadable, truncated or non-image file.
    ConfigError
        A non-positive ``mpp``.

    Examples
    --------
    >>> with Slide("slide.tif") as slide:                      # doctest: +SKIP
    ...     tile = slide.read_region(0, (1024, 2048), (512, 512))   # (3, 512, 512) uint8
    """

    def __init__(
        self,
        path: Path | str,
        *,
        mpp: float | None = None,
        assume_mpp: float = DEFAULT_ASSUMED_MPP,
        cache_mb: float = 256.0,
    ) -> None:
        self.path = Path(path)
        if mpp is not None and not mpp > 0:
            raise ConfigError(f"mpp must be a positive number of microns per pixel, got {mpp}")
        if not self.path.is_file():
            raise ImageReadError(f"{self.path}: no such slide file")
        try:
            import tiffslide
        except ImportError as err:
            raise ImageReadError(
                f"{self.path}: reading slides needs tiffslide; pip install 'medseg[wsi]'"
            ) from err
        try:
            self._slide = tiffslide.TiffSlide(self.path)
            _check_complete(self.path, self._slide.ts_tifffile)
            props = self._slide.properties
            dims = self._slide.level_dimensions
            self._axes = str(props["tiffslide.series-axes"])
        except ImageReadError:
            self.close()
            raise
        except Exception as err:  # tifffile/zarr raise many types on corrupt input
            raise ImageReadError(
                f"{self.path}: not a readable slide ({type(err).__name__}: {err}); "
                "check that it is a complete pyramidal TIFF/SVS"
            ) from err
        self.mpp_assumed = False
        if mpp is not None:
            base = (float(mpp), float(mpp))
        elif props.get("tiffslide.mpp-x") and props.get("tiffslide.mpp-y"):
            base = (float(props["tiffslide.mpp-y"]), float(props["tiffslide.mpp-x"]))
        else:
            warnings.warn(
                f"{self.path}: the slide declares no microns per pixel; assuming {assume_mpp} "
                "µm/px (pass mpp= or --mpp to set it)",
                stacklevel=2,
            )
            base = (float(assume_mpp), float(assume_mpp))
            self.mpp_assumed = True
        height0, width0 = int(dims[0][1]), int(dims[0][0])
        levels = []
        for width, height in dims:
            down = math.sqrt((height0 / height) * (width0 / width))
            levels.append(
                LevelInfo(
                    shape=(int(height), int(width)),
                    downsample=down,
                    mpp=(base[0] * height0 / height, base[1] * width0 / width),
                )
            )
        self.levels: tuple[LevelInfo, ...] = tuple(levels)
        self._pages = _tiled_pages(self._slide, self._axes)
        self._cache: OrderedDict[tuple[int, int], npt.NDArray[np.uint8]] = OrderedDict()
        self._cache_bytes, self._cache_limit = 0, int(cache_mb * 2**20)
        logger.info(
            "slide %s: %d levels, level 0 %s px, %s µm/px", self.path, len(levels), dims[0], base
        )

    @property
    def mpp(self) -> tuple[float, float]:
        """Microns per pixel at level 0 along ``(y, x)``."""
        return self.levels[0].mpp

    @property
    def shape(self) -> tuple[int, int]:
        """Level-0 ``(height, width)`` in pixels."""
        return self.levels[0].shape

    def level_for_downsample(self, downsample: float) -> int:
        """Index of the most reduced level whose downsample does not exceed ``downsample``."""
        best = 0
        for index, level in enumerate(self.levels):
            if level.downsample <= downsample * 1.01:
                best = index
        return best

    def read_region(
        self, level: int, start: tuple[int, int], size: tuple[int, int]
    ) -> npt.NDArray[np.uint8]:
        """Read one rectangle of one level.

        Parameters
        ----------
        level : int
            Pyramid level (0 = full resolution).
        start : tuple of 2 int
            Top-left corner ``(y, x)`` in pixels of that level.
        size : tuple of 2 int
            ``(height, width)`` in pixels of that level.

        Returns
        -------
        ndarray of uint8, shape (C, height, width)

        Raises
        ------
        GeometryError
            The level does not exist or the rectangle is not inside it.
        ImageReadError
            The tile data cannot be decoded (corrupt file).
        """
        if not 0 <= level < len(self.levels):
            raise GeometryError(
                f"{self.path}: level {level} does not exist (levels 0..{len(self.levels) - 1})"
            )
        (y, x), (h, w) = start, size
        height, width = self.levels[level].shape
        if h <= 0 or w <= 0 or y < 0 or x < 0 or y + h > height or x + w > width:
            raise GeometryError(
                f"{self.path}: region y={y}:{y + h}, x={x}:{x + w} is outside level {level} "
                f"({height} x {width} px)"
            )
        try:
            if self._pages is not None:
                return self._read_tiles(level, y, x, h, w)
            array = self._slide.zarr_group[str(level)]
            if self._axes == "YXS":
                region = np.asarray(array[y : y + h, x : x + w]).transpose(2, 0, 1)
            elif self._axes == "CYX":
                region = np.asarray(array[:, y : y + h, x : x + w])
            else:
                region = np.asarray(array[y : y + h, x : x + w])[None]
        except Exception as err:
            raise ImageReadError(
                f"{self.path}: cannot decode level {level} at y={y}, x={x} "
                f"({type(err).__name__}: {err}); the file may be corrupt"
            ) from err
        return np.ascontiguousarray(region, dtype=np.uint8)

    def _read_tiles(self, level: int, y: int, x: int, h: int, w: int) -> npt.NDArray[np.uint8]:
        page = self._pages[level]  # type: ignore[index]
        th, tw = page.tilelength, page.tilewidth
        across = -(-page.imagewidth // tw)
        out = np.empty((page.samplesperpixel, h, w), dtype=np.uint8)
        for ty in range(y // th, (y + h - 1) // th + 1):
            for tx in range(x // tw, (x + w - 1) // tw + 1):
                tile = self._tile(level, ty * across + tx, page)
                y0, y1 = max(y, ty * th), min(y + h, (ty + 1) * th)
                x0, x1 = max(x, tx * tw), min(x + w, (tx + 1) * tw)
                out[:, y0 - y : y1 - y, x0 - x : x1 - x] = tile[
                    :, y0 - ty * th : y1 - ty * th, x0 - tx * tw : x1 - tx * tw
                ]
        return out

    def _tile(self, level: int, index: int, page: Any) -> npt.NDArray[np.uint8]:
        """One decoded tile ``(S, tilelength, tilewidth)``, through the LRU cache."""
        key = (level, index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        count = int(page.databytecounts[index])
        shape = (page.samplesperpixel, page.tilelength, page.tilewidth)
        if count == 0:  # sparse TIFF: a tile never written
            tile = np.zeros(shape, dtype=np.uint8)
        else:
            handle = page.parent.filehandle
            with handle.lock:
                handle.seek(int(page.dataoffsets[index]))
                data = handle.read(count)
            decoded = page.decode(data, index, jpegtables=page.jpegtables)[0]
            tile = np.ascontiguousarray(
                np.asarray(decoded).reshape(shape[1], shape[2], shape[0]).transpose(2, 0, 1)
            )
        self._cache[key] = tile
        self._cache_bytes += tile.nbytes
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cache_bytes -= dropped.nbytes
        return tile

    def read_level(self, level: int, *, max_pixels: int = 64_000_000) -> npt.NDArray[np.uint8]:
        """Read a whole (reduced) level, refusing levels above ``max_pixels`` pixels.

        Returns
        -------
        ndarray of uint8, shape (C, H, W)
        """
        height, width = self.levels[level].shape
        if height * width > max_pixels:
            raise GeometryError(
                f"{self.path}: level {level} has {height} x {width} px, more than {max_pixels} "
                "to hold in memory; read a more reduced level or tiles"
            )
        return self.read_region(level, (0, 0), (height, width))

    def close(self) -> None:
        """Release the file handle."""
        slide = getattr(self, "_slide", None)
        if slide is not None:
            slide.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
