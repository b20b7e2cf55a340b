"""Tile models from medseg model folders (2D, RGB) for :func:`medseg.wsi.predict_slide`.

A tile model is any callable ``(3, H, W) uint8 -> (C, H, W) probabilities``; this module wraps
the existing :class:`medseg.infer.Predictor` (its preprocessing, sliding window, folds and
post-processing) so a model trained on RGB tiles through the normal 2D pipeline segments a
slide. The window's spacing is the slide level's microns per pixel, in mm, so a model trained
at another resolution is resampled as it would be for any image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from medseg.errors import ConfigError
from medseg.wsi.tiled import ProgressFn, SlidePredictionReport, TiledSettings, TileModel


def predictor_tile_model(
    model_dir: Path | str,
    *,
    mpp: tuple[float, float],
    device: str = "auto",
    folds: Sequence[int] | None = None,
    tta: bool = False,
) -> TileModel:
    """Wrap a medseg 2D model folder as a tile model.

    Parameters
    ----------
    model_dir : path
        Model folder of a 2D network with 3 input channels (R, G, B).
    mpp : tuple of 2 float
        Microns per pixel of the level the windows come from, ``(y, x)``.
    device, folds, tta
        As for :class:`medseg.infer.Predictor` (mirroring TTA off by default: slides are big).

    Returns
    -------
    TileModel

    Raises
    ------
    ConfigError
        The model does not take 3 channels or is not 2D.
    """
    from medseg.infer import Predictor
    from medseg.io import Image

    predictor = Predictor(model_dir, device=device, folds=folds, tta=tta)
    if predictor.num_channels != 3:
        raise ConfigError(
            f"{model_dir}: the model takes {predictor.num_channels} channel(s); slide tiles are "
            "RGB (3 channels): train it on RGB tiles"
        )
    if len(predictor.model.config.patch_size) != 2:
        raise ConfigError(f"{model_dir}: slides need a 2D model, this one is 3D")
    spacing_mm = (mpp[0] / 1000.0, mpp[1] / 1000.0)

    def model(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        image = Image.from_array(rgb.astype(np.float32), spacing=spacing_mm)
        probabilities = predictor.predict_image(image, probabilities=True).probabilities
        return np.asarray(probabilities.array, dtype=np.float32)  # type: ignore[union-attr]

    return model


def segment_slide(
    model_dir: Path | str,
    slide_path: Path | str,
    output: Path | str,
    *,
    settings: TiledSettings | None = None,
    mask_mpp: float = 8.0,
    device: str = "auto",
    folds: Sequence[int] | None = None,
    mpp: float | None = None,
    on_progress: ProgressFn | None = None,
) -> SlidePredictionReport:
    """Segment a slide file with a medseg 2D RGB model folder: tissue mask, tiles, pyramid.

    What ``medseg wsi predict`` and ``medseg predict`` (given a slide) run: the tissue mask at
    ``mask_mpp`` µm per pixel (unless ``settings.tissue_only`` is off), then
    :func:`medseg.wsi.predict_slide` with :func:`predictor_tile_model` at the predicted level's
    microns per pixel.

    Parameters
    ----------
    model_dir : path
        2D model folder taking 3 channels (R, G, B).
    slide_path : path
        Pyramidal TIFF, SVS, OME-TIFF.
    output : path
        Label pyramid to write (``.tif``); resumable after a kill (see ``predict_slide``).
    settings : TiledSettings, optional
    mask_mpp : float
        Tissue mask resolution in µm per pixel.
    device, folds
        As for :class:`medseg.infer.Predictor`.
    mpp : float, optional
        Level-0 µm per pixel overriding the file's.
    on_progress : callable(done, total), optional
        Windows predicted over windows planned.

    Returns
    -------
    SlidePredictionReport
    """
    from medseg.wsi.slide import Slide
    from medseg.wsi.tiled import predict_slide
    from medseg.wsi.tissue import TissueSettings, tissue_mask

    settings = settings or TiledSettings()
    with Slide(slide_path, mpp=mpp) as slide:
        if not 0 <= settings.level < len(slide.levels):
            raise ConfigError(
                f"{slide.path}: no level {settings.level} (0..{len(slide.levels) - 1})"
            )
        mask = (
            tissue_mask(slide, TissueSettings(mask_mpp=mask_mpp)) if settings.tissue_only else None
        )
        level_mpp = slide.levels[settings.level].mpp
        tile_model = predictor_tile_model(model_dir, mpp=level_mpp, device=device, folds=folds)
        return predict_slide(
            slide, tile_model, output, tissue=mask, settings=settings, on_progress=on_progress
        )
