"""Training tiles from slides: RGB tiles plus labels from GeoJSON polygons or a label image.

The output is an nnU-Net-format 2D dataset (``imagesTr/<case>_0000.png`` holding R, G and B,
``labelsTr/<case>.png``, ``dataset.json``), which ``medseg check``, ``medseg plan`` and
``medseg train`` take as they are; ``dataset.json`` also records the slide, level and microns per
pixel the tiles were cut at. Every file is written atomically and ``dataset.json`` last, so an
interrupted extraction never looks like a finished dataset.

Also here: H&E stain augmentation in HED space (Tellez et al. 2018), ``hed_jitter``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from medseg._atomic import atomic_path, write_text_atomic
from medseg.errors import DatasetError
from medseg.wsi.geojson import Annotation, bounds, rasterize
from medseg.wsi.grid import TileGrid
from medseg.wsi.slide import Slide
from medseg.wsi.tissue import TissueMask


@dataclass(frozen=True, kw_only=True)
class TileExtraction:
    """What :func:`extract_tiles` wrote.

    Attributes
    ----------
    output : Path
        The dataset folder.
    tiles : int
        Image/label pairs written.
    labelled_pixels : int
        Pixels with a label other than 0, over all tiles.
    """

    output: Path
    tiles: int
    labelled_pixels: int


def extract_tiles(
    slide: Slide,
    output: Path | str,
    *,
    classes: dict[str, int],
    annotations: list[Annotation] | None = None,
    label_image: npt.NDArray[np.integer] | None = None,
    label_downsample: float = 1.0,
    tissue: TissueMask | None = None,
    level: int = 0,
    tile: int = 512,
    min_labelled: float = 0.0,
    dataset_name: str = "SlideTiles",
) -> TileExtraction:
    """Cut a slide into training tiles with labels.

    Parameters
    ----------
    slide : Slide
    output : path
        Dataset folder to create.
    classes : dict of str to int
        Label value per class name (``background`` is 0 and need not be listed).
    annotations : list of Annotation, optional
        Polygons in level-0 pixels (:func:`medseg.wsi.geojson.read_annotations`).
    label_image : ndarray of int, shape (H, W), optional
        Labels on a grid of ``label_downsample`` level-0 pixels per pixel (nearest neighbour).
    tissue : TissueMask, optional
        Only tiles with tissue are kept.
    level, tile : int
        Pyramid level and tile edge.
    min_labelled : float
        Keep a tile only when more than this fraction of it is labelled (0: any tile).

    Returns
    -------
    TileExtraction

    Raises
    ------
    DatasetError
        Neither or both label sources, annotations outside the slide, or a label image whose
        extent does not match the slide.
    """
    if (annotations is None) == (label_image is None):
        raise DatasetError("give exactly one label source: annotations or label_image")
    info = slide.levels[level]
    height0, width0 = slide.shape
    if annotations is not None and annotations:
        y0, x0, y1, x1 = bounds(annotations)
        if y0 < 0 or x0 < 0 or y1 > height0 or x1 > width0:
            raise DatasetError(
                f"{slide.path}: annotations span x {x0:.0f}..{x1:.0f}, y {y0:.0f}..{y1:.0f} px, "
                f"outside the {width0} x {height0} px slide; were they drawn on another slide?"
            )
    if label_image is not None:
        if label_image.ndim != 2 or label_image.min() < 0 or label_image.max() > 255:
            raise DatasetError(
                f"label image must be 2D with values 0..255, got shape {label_image.shape}"
            )
        expected = (height0 / label_downsample, width0 / label_downsample)
        if any(abs(a - b) > 1 for a, b in zip(label_image.shape, expected, strict=True)):
            raise DatasetError(
                f"label image {label_image.shape} does not cover the slide at downsample "
                f"{label_downsample} (expected about {expected[0]:.0f} x {expected[1]:.0f})"
            )
    output = Path(output)
    (output / "imagesTr").mkdir(parents=True, exist_ok=True)
    (output / "labelsTr").mkdir(parents=True, exist_ok=True)
    grid = TileGrid(shape=info.shape, tile=tile, halo=0)
    written = labelled = 0
    for row in range(grid.rows):
        for col in range(grid.cols):
            y, x, h, w = grid.tile_box(row, col)
            if tissue is not None and tissue.tissue_in((y, x), (h, w), info.downsample) <= 0:
                continue
            offset = (y * info.downsample, x * info.downsample)
            if annotations is not None:
                labels = rasterize(
                    annotations, (h, w), classes=classes, offset=offset,
                    downsample=info.downsample,
                )  # fmt: skip
            else:
                labels = _sample_labels(
                    label_image, offset, (h, w), info.downsample, label_downsample
                )
            if labels.mean(dtype=np.float64) <= min_labelled and min_labelled > 0:
                continue
            case = f"{slide.path.stem}_L{level}_y{y}_x{x}"
            _write_png(
                slide.read_region(level, (y, x), (h, w)), output / "imagesTr" / f"{case}_0000.png"
            )
            _write_png(labels[None], output / "labelsTr" / f"{case}.png")
            written += 1
            labelled += int(np.count_nonzero(labels))
    dataset = {
        "name": dataset_name,
        "channel_names": {"0": "R", "1": "G", "2": "B"},
        "labels": {"background": 0, **{k: int(v) for k, v in classes.items() if v != 0}},
        "numTraining": written,
        "file_ending": ".png",
        "source_slide": {"path": str(slide.path), "level": level, "mpp": list(info.mpp)},
    }
    write_text_atomic(json.dumps(dataset, indent=2, sort_keys=True), output / "dataset.json")
    return TileExtraction(output=output, tiles=written, labelled_pixels=labelled)


def _sample_labels(
    label_image: npt.NDArray[np.integer],
    offset: tuple[float, float],
    size: tuple[int, int],
    downsample: float,
    label_downsample: float,
) -> npt.NDArray[np.uint8]:
    """Nearest-neighbour labels of a tile (pixels of ``downsample`` level-0 px at ``offset``)."""
    axes = []
    for axis in range(2):
        centres = offset[axis] + (np.arange(size[axis]) + 0.5) * downsample
        index = (centres / label_downsample).astype(np.int64)
        axes.append(np.clip(index, 0, label_image.shape[axis] - 1))
    return label_image[np.ix_(axes[0], axes[1])].astype(np.uint8)


def _write_png(array: npt.NDArray[np.uint8], path: Path) -> None:
    from PIL import Image as PILImage

    image = array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)
    with atomic_path(path) as tmp:
        PILImage.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")


def hed_jitter(
    rgb: npt.NDArray[np.uint8],
    rng: np.random.Generator,
    *,
    sigma: float = 0.05,
    bias: float = 0.05,
) -> npt.NDArray[np.uint8]:
    """H&E stain augmentation: scale and shift each HED stain channel at random.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (3, H, W)
    rng : numpy Generator
    sigma : float
        Standard deviation of the multiplicative factor (around 1) per stain.
    bias : float
        Standard deviation of the additive shift per stain, as a fraction of that stain's
        largest amount in the image.

    Returns
    -------
    ndarray of uint8, shape (3, H, W)
    """
    from skimage.color import hed_from_rgb, rgb_from_hed

    # optical density -> stains with scikit-image's H&E-DAB matrices, without its clamp of
    # negative stain amounts, so that no jitter gives back the input
    density = -np.log(np.maximum(np.moveaxis(rgb, 0, -1).astype(np.float64), 1.0) / 255.0)
    stains = density @ hed_from_rgb
    alpha = rng.normal(1.0, sigma, size=3)
    beta = rng.normal(0.0, bias, size=3)
    density = (stains * alpha + beta * np.abs(stains).max(axis=(0, 1))) @ rgb_from_hed
    out = 255.0 * np.exp(-density)
    return np.moveaxis(np.clip(out + 0.5, 0, 255).astype(np.uint8), -1, 0)
