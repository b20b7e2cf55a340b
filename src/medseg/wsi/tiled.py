"""Tiled, tissue-only, coarse-to-fine prediction of a whole slide, streamed to a pyramidal TIFF.

1. **Tissue only**: tiles without tissue in the :class:`~medseg.wsi.TissueMask` are not read.
2. **Coarse to fine**: the model first runs on a reduced level (``coarse_downsample``); at the
   predicted level only tiles where the coarse foreground probability (1 - p(background))
   exceeds ``refine_threshold`` somewhere are predicted — tiles that hold the target or are
   uncertain. The others are background.
3. **Blending**: each tile is predicted through a window ``halo`` pixels larger on every side;
   overlapping windows are averaged with Gaussian weights (nnU-Net's sigma = 1/8 window).
4. **Streaming and resuming**: finished rows of tiles go, compressed, to ``<output>.parts/``
   with a manifest of done rows; a killed run started again with the same settings skips them.
   The TIFF is assembled from the parts at the end, written atomically, and the parts removed.

Memory holds the blending accumulators of three rows of tiles and, for coarse-to-fine, the
coarse level's foreground map (uint8), never the slide.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from medseg._atomic import atomic_path, write_text_atomic
from medseg.errors import ConfigError
from medseg.wsi.grid import TileGrid
from medseg.wsi.pyramid import write_label_pyramid
from medseg.wsi.slide import Slide
from medseg.wsi.tissue import MASK_LABELS, TissueMask

logger = logging.getLogger(__name__)

#: A tile model maps an RGB window ``(3, H, W)`` uint8 to class probabilities ``(C, H, W)``,
#: class 0 being background.
TileModel = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.floating]]
ProgressFn = Callable[[int, int], None]
_MANIFEST_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class TiledSettings:
    """How a slide is tiled and which tiles are predicted.

    Attributes
    ----------
    level : int
        Pyramid level predicted and written (0 = full resolution).
    tile : int
        Output tile edge in pixels (and the output TIFF's tile size).
    halo : int
        Context on each side of a tile, in pixels; windows are ``tile + 2 * halo``.
    tissue_only : bool
        Skip tiles without tissue (needs a tissue mask).
    min_tissue_fraction : float
        A tile is tissue when more than this fraction of it is tissue.
    tissue_margin_um : float
        Tissue grows by this much over glass before tiles are chosen (a thumbnail-level mask is
        uncertain by a pixel or two at its edge).
    coarse_downsample : float or None
        Coarse pass at about this reduction of ``level``; ``None`` predicts every tile at
        ``level`` (no coarse-to-fine).
    refine_threshold : float
        Refine a tile when the coarse foreground probability exceeds this anywhere in it.
    sigma_scale : float
        Gaussian blending sigma as a fraction of the window.
    """

    level: int = 0
    tile: int = 256
    halo: int = 32
    tissue_only: bool = True
    min_tissue_fraction: float = 0.0
    tissue_margin_um: float = 50.0
    coarse_downsample: float | None = 8.0
    refine_threshold: float = 0.1
    sigma_scale: float = 0.125

    def __post_init__(self) -> None:
        if self.coarse_downsample is not None and not self.coarse_downsample > 1:
            raise ConfigError(f"coarse_downsample must be > 1, got {self.coarse_downsample}")
        if not 0 <= self.refine_threshold < 1:
            raise ConfigError(f"refine_threshold must be in [0, 1), got {self.refine_threshold}")
        if not 0 <= self.min_tissue_fraction < 1:
            raise ConfigError(
                f"min_tissue_fraction must be in [0, 1), got {self.min_tissue_fraction}"
            )


@dataclass(frozen=True, kw_only=True)
class SlidePredictionReport:
    """What :func:`predict_slide` did.

    Attributes
    ----------
    output : Path
        The pyramidal TIFF of labels (uint8) at the predicted level's mpp.
    shape : tuple of 2 int
        Its level-0 ``(height, width)``.
    mpp : tuple of 2 float
        Its microns per pixel along ``(y, x)``.
    tiles_total, tiles_tissue, tiles_refined : int
        Grid tiles; tiles with tissue; tiles predicted at the output level.
    coarse_tiles : int
        Windows predicted in the coarse pass.
    rows_resumed : int
        Rows of tiles taken from an interrupted run.
    seconds : float
        Wall time, assembly included.
    """

    output: Path
    shape: tuple[int, int]
    mpp: tuple[float, float]
    tiles_total: int
    tiles_tissue: int
    tiles_refined: int
    coarse_tiles: int
    rows_resumed: int
    seconds: float

    @property
    def tiles_per_second(self) -> float:
        """Grid tiles covered per second (the slide's throughput)."""
        return self.tiles_total / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> dict[str, object]:
        """JSON-ready numbers."""
        data = asdict(self)
        data["output"] = str(self.output)
        data["seconds"] = round(self.seconds, 3)
        data["tiles_per_second"] = round(self.tiles_per_second, 2)
        return data


def _gaussian(shape: tuple[int, int], sigma_scale: float) -> npt.NDArray[np.float32]:
    """Separable Gaussian window weights, 1 at the centre, floored at 1e-3 (never zero).

    The same map as ``medseg.infer.gaussian_importance_map``, computed here without importing
    torch (tile models need not be torch models).
    """
    axes = []
    for size in shape:
        coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
        sigma = max(size * sigma_scale, 1e-6)
        axes.append(np.exp(-(coords**2) / (2.0 * sigma**2)))
    return np.maximum(np.outer(axes[0], axes[1]), 1e-3).astype(np.float32)


def _check_probabilities(
    probs: npt.NDArray[np.floating], shape: tuple[int, int]
) -> npt.NDArray[np.float32]:
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3 or probs.shape[1:] != shape or probs.shape[0] < 2:
        raise ConfigError(
            f"the tile model returned shape {probs.shape} for a {shape} window; it must return "
            "class probabilities of shape (C, H, W) with C >= 2 (class 0 = background)"
        )
    if not np.all(np.isfinite(probs)):
        raise ConfigError("the tile model returned NaN or infinite probabilities")
    return probs


def blended_rows(
    slide: Slide,
    level: int,
    grid: TileGrid,
    active: npt.NDArray[np.bool_],
    model: TileModel,
    *,
    sigma_scale: float = 0.125,
    first_row: int = 0,
    on_window: Callable[[], None] | None = None,
) -> Iterator[tuple[int, dict[int, npt.NDArray[np.float32]]]]:
    """Predict the active tiles, yielding each row of tiles once all its windows are done.

    Parameters
    ----------
    slide, level : Slide, int
        Source of the RGB windows.
    grid : TileGrid
        Tiles of that level.
    active : ndarray of bool, shape (grid.rows, grid.cols)
        Tiles to predict.
    model : TileModel
    first_row : int
        Rows before it are not yielded (resume); the row above is still predicted for blending.

    Yields
    ------
    row : int
    tiles : dict of int to ndarray of float32, shape (C, h, w)
        Blended probabilities of the row's active tiles, by column.
    """
    acc: dict[tuple[int, int], tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}
    weights: dict[tuple[int, int], npt.NDArray[np.float32]] = {}

    def finish(row: int) -> dict[int, npt.NDArray[np.float32]]:
        done = {}
        for col in np.flatnonzero(active[row]):
            total, weight = acc.pop((row, int(col)))
            done[int(col)] = total / weight
        return done

    for row in range(max(first_row - 1, 0), grid.rows):
        for col in np.flatnonzero(active[row]):
            wy, wx, wh, ww = grid.window_box(row, int(col))
            rgb = slide.read_region(level, (wy, wx), (wh, ww))
            probs = _check_probabilities(model(rgb), (wh, ww))
            if (wh, ww) not in weights:
                weights[(wh, ww)] = _gaussian((wh, ww), sigma_scale)
            gauss = weights[(wh, ww)]
            for r in range(max(row - 1, first_row), min(row + 2, grid.rows)):
                for c in range(max(int(col) - 1, 0), min(int(col) + 2, grid.cols)):
                    if not active[r, c]:
                        continue
                    ty, tx, th, tw = grid.tile_box(r, c)
                    y0, y1 = max(ty, wy), min(ty + th, wy + wh)
                    x0, x1 = max(tx, wx), min(tx + tw, wx + ww)
                    if y0 >= y1 or x0 >= x1:
                        continue
                    if (r, c) not in acc:
                        acc[(r, c)] = (
                            np.zeros((probs.shape[0], th, tw), np.float32),
                            np.zeros((th, tw), np.float32),
                        )
                    total, weight = acc[(r, c)]
                    src = (slice(y0 - wy, y1 - wy), slice(x0 - wx, x1 - wx))
                    dst = (slice(y0 - ty, y1 - ty), slice(x0 - tx, x1 - tx))
                    total[(slice(None), *dst)] += probs[(slice(None), *src)] * gauss[src]
                    weight[dst] += gauss[src]
            if on_window is not None:
                on_window()
        if row - 1 >= first_row:
            yield row - 1, finish(row - 1)
    if grid.rows - 1 >= first_row:
        yield grid.rows - 1, finish(grid.rows - 1)


def _grown(tissue: TissueMask, margin_um: float) -> TissueMask:
    """The mask with tissue grown by ``margin_um`` over glass (the mask's edge is uncertain)."""
    from scipy import ndimage

    radius = round(margin_um / min(tissue.mpp))
    if radius < 1:
        return tissue
    grow = ndimage.binary_dilation(tissue.labels == MASK_LABELS["tissue"], iterations=radius) & (
        tissue.labels == MASK_LABELS["background"]
    )
    labels = tissue.labels.copy()
    labels[grow] = MASK_LABELS["tissue"]
    return replace(tissue, labels=labels)


def _tissue_tiles(
    grid: TileGrid, tissue: TissueMask | None, downsample: float, minimum: float
) -> npt.NDArray[np.bool_]:
    """Tiles holding more than ``minimum`` tissue (all tiles without a mask)."""
    if tissue is None:
        return np.ones((grid.rows, grid.cols), dtype=bool)
    active = np.zeros((grid.rows, grid.cols), dtype=bool)
    for row in range(grid.rows):
        for col in range(grid.cols):
            y, x, h, w = grid.tile_box(row, col)
            active[row, col] = tissue.tissue_in((y, x), (h, w), downsample) > minimum
    return active


def _coarse_refine(
    slide: Slide,
    fine: TileGrid,
    fine_level: int,
    model: TileModel,
    settings: TiledSettings,
    tissue: TissueMask | None,
    tick: Callable[[], None],
) -> tuple[npt.NDArray[np.bool_] | None, int]:
    """Fine tiles to refine (None: no coarser level) and the number of coarse windows."""
    fine_down = slide.levels[fine_level].downsample
    level = slide.level_for_downsample(fine_down * (settings.coarse_downsample or 1.0))
    if level <= fine_level:
        logger.warning("%s: no level coarser than %d; predicting all tiles", slide.path, fine_level)
        return None, 0
    coarse_down = slide.levels[level].downsample
    grid = TileGrid(shape=slide.levels[level].shape, tile=settings.tile, halo=settings.halo)
    active = _tissue_tiles(grid, tissue, coarse_down, settings.min_tissue_fraction)
    foreground = np.zeros(grid.shape, dtype=np.uint8)
    for row, tiles in blended_rows(
        slide, level, grid, active, model, sigma_scale=settings.sigma_scale, on_window=tick
    ):
        for col, probs in tiles.items():
            y, x, h, w = grid.tile_box(row, col)
            foreground[y : y + h, x : x + w] = np.round((1.0 - probs[0]).clip(0, 1) * 255)
    ratio = coarse_down / fine_down
    cut = settings.refine_threshold * 255
    refine = np.zeros((fine.rows, fine.cols), dtype=bool)
    for row in range(fine.rows):
        for col in range(fine.cols):
            y, x, h, w = fine.window_box(row, col)  # the target anywhere in the window
            y0, x0 = max(int(y / ratio) - 1, 0), max(int(x / ratio) - 1, 0)
            y1, x1 = int(np.ceil((y + h) / ratio)) + 1, int(np.ceil((x + w) / ratio)) + 1
            refine[row, col] = foreground[y0:y1, x0:x1].max(initial=0) > cut
    return refine, int(active.sum())


def predict_slide(
    slide: Slide,
    model: TileModel,
    output: Path | str,
    *,
    tissue: TissueMask | None = None,
    settings: TiledSettings | None = None,
    on_progress: ProgressFn | None = None,
) -> SlidePredictionReport:
    """Segment a whole slide tile by tile and write the labels as a pyramidal TIFF.

    Parameters
    ----------
    slide : Slide
    model : TileModel
        ``(3, H, W)`` uint8 RGB window -> ``(C, H, W)`` probabilities, class 0 background.
        Any callable: :func:`medseg.wsi.models.predictor_tile_model` wraps a medseg 2D model.
    output : path
        ``.tif`` label map (uint8) at ``settings.level``'s resolution and mpp.
    tissue : TissueMask, optional
        Required when ``settings.tissue_only`` (compute it with :func:`tissue_mask`).
    settings : TiledSettings, optional
    on_progress : callable(done, total), optional
        Windows predicted over windows planned (coarse pass included).

    Returns
    -------
    SlidePredictionReport

    Raises
    ------
    ConfigError
        ``tissue_only`` without a tissue mask, a missing level, or a model returning
        something other than ``(C, H, W)`` probabilities.
    """
    settings = settings or TiledSettings()
    output = Path(output)
    if settings.tissue_only and tissue is None:
        raise ConfigError("tissue_only prediction needs a tissue mask (medseg.wsi.tissue_mask)")
    if not 0 <= settings.level < len(slide.levels):
        raise ConfigError(f"{slide.path}: no level {settings.level} (0..{len(slide.levels) - 1})")
    if not output.parent.is_dir():
        raise ConfigError(f"{output}: folder {output.parent} does not exist")
    started = time.perf_counter()
    info = slide.levels[settings.level]
    grid = TileGrid(shape=info.shape, tile=settings.tile, halo=settings.halo)
    mask_tiles = (
        _grown(tissue, settings.tissue_margin_um) if tissue and settings.tissue_only else None
    )
    active = _tissue_tiles(grid, mask_tiles, info.downsample, settings.min_tissue_fraction)
    tiles_tissue = int(active.sum())
    parts = output.with_name(output.name + ".parts")
    manifest = _Manifest.open(parts, slide, settings)
    done = [0]
    total = [tiles_tissue]

    def tick() -> None:
        done[0] += 1
        if on_progress is not None:
            on_progress(done[0], total[0])

    coarse_tiles = 0
    if settings.coarse_downsample is not None:
        if manifest.refine is None:
            total[0] += tiles_tissue  # a rough plan until the coarse grid is known
            refine, coarse_tiles = _coarse_refine(
                slide, grid, settings.level, model, settings, mask_tiles, tick
            )
            manifest.save_refine(refine if refine is not None else active)
        active &= manifest.refine if manifest.refine is not None else active
    refined = int(active.sum())
    resumed = sum(1 for r in range(grid.rows) if r in manifest.rows_done)
    first = _first_missing(manifest.rows_done, grid.rows)
    total[0] = done[0] + int(active[max(first - 1, 0) :].sum())
    for row, tiles in blended_rows(
        slide, settings.level, grid, active, model,
        sigma_scale=settings.sigma_scale, first_row=first, on_window=tick,
    ):  # fmt: skip
        if row in manifest.rows_done:
            continue
        labels = np.zeros((grid.tile_box(row, 0)[2], grid.shape[1]), dtype=np.uint8)
        for col, probs in tiles.items():
            _, x, _, w = grid.tile_box(row, col)
            labels[:, x : x + w] = np.argmax(probs, axis=0).astype(np.uint8)
        manifest.save_row(row, labels)
    write_label_pyramid(output, manifest.load_row, grid.shape, tile=settings.tile, mpp=info.mpp)
    shutil.rmtree(parts, ignore_errors=True)
    report = SlidePredictionReport(
        output=output,
        shape=grid.shape,
        mpp=info.mpp,
        tiles_total=len(grid),
        tiles_tissue=tiles_tissue,
        tiles_refined=refined,
        coarse_tiles=coarse_tiles,
        rows_resumed=resumed,
        seconds=time.perf_counter() - started,
    )
    logger.info("predicted %s: %s", slide.path, report.summary())
    return report


def _first_missing(rows_done: set[int], rows: int) -> int:
    for row in range(rows):
        if row not in rows_done:
            return row
    return rows


class _Manifest:
    """``<output>.parts/``: manifest.json (settings, slide, done rows), row files, refine map."""

    def __init__(self, folder: Path, key: dict[str, object]) -> None:
        self.folder = folder
        self.key = key
        self.rows_done: set[int] = set()
        self.refine: npt.NDArray[np.bool_] | None = None
        self.height, self.width, self.tile = 0, 0, 0

    @classmethod
    def open(cls, folder: Path, slide: Slide, settings: TiledSettings) -> _Manifest:
        key = {
            "version": _MANIFEST_VERSION,
            "slide": str(slide.path.resolve()),
            "slide_bytes": slide.path.stat().st_size,
            "settings": asdict(settings),
        }
        manifest = cls(folder, key)
        manifest.height, manifest.width = slide.levels[settings.level].shape
        manifest.tile = settings.tile
        path = folder / "manifest.json"
        if path.is_file():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                saved = {}
            if saved.get("key") == json.loads(json.dumps(key)):
                manifest.rows_done = set(saved.get("rows_done", []))
                refine = folder / "refine.npy"
                if refine.is_file():
                    manifest.refine = np.load(refine, allow_pickle=False)
                logger.info("resuming: %d rows already done", len(manifest.rows_done))
            else:
                logger.warning("%s: from other settings or slide; starting over", folder)
                shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        manifest._write()
        return manifest

    def _write(self) -> None:
        data = {"key": self.key, "rows_done": sorted(self.rows_done)}
        write_text_atomic(json.dumps(data, indent=1, sort_keys=True), self.folder / "manifest.json")

    def save_refine(self, refine: npt.NDArray[np.bool_]) -> None:
        with atomic_path(self.folder / "refine.npy") as tmp, tmp.open("wb") as handle:
            np.save(handle, refine, allow_pickle=False)
        self.refine = refine

    def save_row(self, row: int, labels: npt.NDArray[np.uint8]) -> None:
        if labels.any():
            with atomic_path(self.folder / f"row_{row:06d}.zlib") as tmp:
                tmp.write_bytes(zlib.compress(labels.tobytes(), 1))
        self.rows_done.add(row)
        self._write()

    def load_row(self, row: int) -> npt.NDArray[np.uint8]:
        path = self.folder / f"row_{row:06d}.zlib"
        if not path.is_file():
            return np.zeros((self._height(row), self.width), dtype=np.uint8)
        data = np.frombuffer(zlib.decompress(path.read_bytes()), dtype=np.uint8)
        return data.reshape(-1, self.width)

    def _height(self, row: int) -> int:
        return min(self.tile, self.height - row * self.tile)
