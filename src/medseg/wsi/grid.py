"""A regular grid of output tiles over one slide level, each predicted through a larger window.

Tile ``(row, col)`` covers ``[row * tile, (row + 1) * tile)`` x ``[col * tile, ...)`` (clipped at
the slide's edge). Its *window* is the tile grown by ``halo`` pixels on every side (clipped too):
the network sees the window, and neighbouring windows overlap by ``2 * halo`` pixels, where
their predictions are blended with Gaussian weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from medseg.errors import ConfigError, GeometryError

Box = tuple[int, int, int, int]  # y0, x0, height, width in pixels of the level


@dataclass(frozen=True, kw_only=True)
class TileGrid:
    """Output tiles of one level.

    Attributes
    ----------
    shape : tuple of 2 int
        ``(height, width)`` of the level in pixels.
    tile : int
        Output tile edge in pixels (also the output TIFF's tile size; multiple of 16).
    halo : int
        Context added on each side of a tile for its window, in pixels.
    """

    shape: tuple[int, int]
    tile: int = 256
    halo: int = 32

    def __post_init__(self) -> None:
        if self.tile <= 0 or self.tile % 16:
            raise ConfigError(f"tile must be a positive multiple of 16 (TIFF), got {self.tile}")
        if self.halo < 0:
            raise ConfigError(f"halo must be >= 0 pixels, got {self.halo}")
        if min(self.shape) <= 0:
            raise GeometryError(f"a tile grid needs a non-empty level, got shape {self.shape}")

    @property
    def rows(self) -> int:
        """Number of tile rows."""
        return math.ceil(self.shape[0] / self.tile)

    @property
    def cols(self) -> int:
        """Number of tile columns."""
        return math.ceil(self.shape[1] / self.tile)

    def _check(self, row: int, col: int) -> None:
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise GeometryError(
                f"tile ({row}, {col}) is outside the slide: the grid has {self.rows} x "
                f"{self.cols} tiles of {self.tile} px over {self.shape[0]} x {self.shape[1]} px"
            )

    def tile_box(self, row: int, col: int) -> Box:
        """``(y0, x0, height, width)`` of a tile, clipped to the level."""
        self._check(row, col)
        y0, x0 = row * self.tile, col * self.tile
        return y0, x0, min(self.tile, self.shape[0] - y0), min(self.tile, self.shape[1] - x0)

    def window_box(self, row: int, col: int) -> Box:
        """``(y0, x0, height, width)`` of a tile's window (tile plus halo), clipped to the level."""
        y0, x0, h, w = self.tile_box(row, col)
        wy0, wx0 = max(y0 - self.halo, 0), max(x0 - self.halo, 0)
        wy1 = min(y0 + h + self.halo, self.shape[0])
        wx1 = min(x0 + w + self.halo, self.shape[1])
        return wy0, wx0, wy1 - wy0, wx1 - wx0

    def __len__(self) -> int:
        return self.rows * self.cols
