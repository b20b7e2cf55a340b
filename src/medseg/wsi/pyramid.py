"""Stream a label map, row of tiles by row of tiles, into a tiled pyramidal TIFF.

Level 0 comes from a callable that returns one row of tiles at a time; each reduced level
(factor 2, nearest neighbour, so labels stay labels) is built from the previous one while that
is written, and kept zlib-compressed in memory (label maps compress by orders of magnitude). The
full-resolution map is never held whole. Levels are SubIFDs, as tiffslide and QuPath read them,
and every level carries its microns per pixel as a resolution in pixels per centimetre.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from medseg._atomic import atomic_path

RowFn = Callable[[int], npt.NDArray[np.uint8]]


def pyramid_shapes(shape: tuple[int, int], tile: int) -> list[tuple[int, int]]:
    """Level shapes, halving until the larger edge fits one tile."""
    shapes = [shape]
    while max(shapes[-1]) > tile:
        h, w = shapes[-1]
        shapes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return shapes


def write_label_pyramid(
    path: Path,
    row: RowFn,
    shape: tuple[int, int],
    *,
    tile: int,
    mpp: tuple[float, float],
    compression: str = "zlib",
) -> Path:
    """Write a ``uint8`` label map as a tiled pyramidal TIFF, atomically.

    Parameters
    ----------
    path : Path
        Output ``.tif``; appears only once complete.
    row : callable(int) -> ndarray of uint8, shape (h, width)
        Row ``r`` of tiles of level 0: rows ``[r * tile, r * tile + h)``, ``h = tile`` except
        for the last row. Called once per row, in order.
    shape : tuple of 2 int
        Level-0 ``(height, width)``.
    tile : int
        TIFF tile edge (multiple of 16).
    mpp : tuple of 2 float
        Level-0 microns per pixel along ``(y, x)``.
    compression : str
        TIFF compression of the tiles (``zlib`` needs no extra codec).

    Returns
    -------
    Path
    """
    import tifffile

    shapes = pyramid_shapes(shape, tile)
    source: RowFn = row
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for level, level_shape in enumerate(shapes):
            reduced: list[bytes] = []
            last = level == len(shapes) - 1
            tiles = _tiles(source, level_shape, tile, None if last else reduced)
            factor = 2**level
            options: dict[str, object] = {
                "resolution": (1e4 / (mpp[1] * factor), 1e4 / (mpp[0] * factor)),
                "resolutionunit": "CENTIMETER",
            }
            if level == 0:
                options["subifds"] = len(shapes) - 1
                options["software"] = "medseg"
            else:
                options["subfiletype"] = 1
            tif.write(
                tiles,
                shape=level_shape,
                dtype=np.uint8,
                tile=(tile, tile),
                compression=compression,
                photometric="minisblack",
                **options,
            )
            width = math.ceil(level_shape[1] / 2)
            source = _decompressor(reduced, width)
    return path


def _decompressor(rows: list[bytes], width: int) -> RowFn:
    def get(index: int) -> npt.NDArray[np.uint8]:
        data = np.frombuffer(zlib.decompress(rows[index]), dtype=np.uint8)
        return data.reshape(-1, width)

    return get


def _tiles(
    source: RowFn, shape: tuple[int, int], tile: int, reduced: list[bytes] | None
) -> Iterator[npt.NDArray[np.uint8]]:
    """Tiles of one level in row-major order; fills ``reduced`` with the next level's rows."""
    rows, cols = math.ceil(shape[0] / tile), math.ceil(shape[1] / tile)
    pending: list[npt.NDArray[np.uint8]] = []
    for index in range(rows):
        band = source(index)
        height = min(tile, shape[0] - index * tile)
        if band.shape != (height, shape[1]):
            raise ValueError(f"row {index} has shape {band.shape}, expected {(height, shape[1])}")
        if reduced is not None:  # before the yields: tifffile stops after the last tile
            pending.append(band[::2, ::2])
            if len(pending) == 2 or index == rows - 1:
                reduced.append(zlib.compress(np.concatenate(pending).tobytes(), 1))
                pending = []
        padded = np.zeros((tile, cols * tile), dtype=np.uint8)
        padded[:height, : shape[1]] = band
        for col in range(cols):
            yield padded[:, col * tile : (col + 1) * tile]
