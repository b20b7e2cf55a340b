"""Tissue and pen-mark masks from a slide thumbnail (classical: HSV, Otsu, morphology).

Tissue is stained, so it is *saturated*; glass is white or grey. The default threshold is Otsu's
on the thumbnail's saturation, floored at ``min_saturation`` so a slide that is nearly all glass
does not split its background noise. Pen ink is strongly saturated and of a hue H&E never has
(blue, green) or nearly black; pen pixels are removed from tissue. Lengths are in microns, so the
same settings work whatever the thumbnail's resolution.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from medseg._atomic import atomic_path
from medseg.errors import ConfigError, ImageWriteError
from medseg.wsi.slide import Slide

#: Label values of :attr:`TissueMask.labels`.
MASK_LABELS = {"background": 0, "tissue": 1, "pen": 2}


@dataclass(frozen=True, kw_only=True)
class TissueSettings:
    """Tunable parameters of :func:`tissue_mask` (lengths in µm, areas in µm²).

    Attributes
    ----------
    mask_mpp : float
        Resolution of the mask in microns per pixel (8 µm: a 60 000 px slide at 0.5 µm/px gives
        a 3 750 px mask).
    saturation_threshold : float or None
        HSV saturation in [0, 1] above which a pixel is tissue; ``None``: Otsu's threshold.
    min_saturation : float
        Floor for the Otsu threshold.
    max_value : float
        Pixels brighter than this HSV value (0-1) with low saturation are glass.
    closing_um : float
        Radius of the closing that joins tissue fragments.
    min_tissue_um2 : float
        Tissue pieces smaller than this are dropped (dust, debris).
    max_hole_um2 : float
        Holes in tissue smaller than this are filled (lumina, fat cells).
    pens : bool
        Detect pen marks (otherwise label 2 never appears).
    pen_hue_ranges : tuple of (float, float)
        Hue intervals in [0, 1) of pen ink (default blue and green).
    pen_min_saturation : float
        Ink is at least this saturated.
    pen_max_value : float
        Pixels darker than this value are black ink whatever their hue.
    pen_min_um2 : float
        Ink specks smaller than this are ignored.
    pen_dilation_um : float
        Pen masks grow by this much (ink edges blend with tissue).
    """

    mask_mpp: float = 8.0
    saturation_threshold: float | None = None
    min_saturation: float = 0.05
    max_value: float = 0.9
    closing_um: float = 32.0
    min_tissue_um2: float = 10_000.0
    max_hole_um2: float = 40_000.0
    pens: bool = True
    pen_hue_ranges: tuple[tuple[float, float], ...] = ((0.52, 0.7), (0.2, 0.5))
    pen_min_saturation: float = 0.3
    pen_max_value: float = 0.15
    pen_min_um2: float = 1_000.0
    pen_dilation_um: float = 24.0

    def __post_init__(self) -> None:
        if not self.mask_mpp > 0:
            raise ConfigError(f"mask_mpp must be positive (µm per pixel), got {self.mask_mpp}")
        if self.saturation_threshold is not None and not 0 <= self.saturation_threshold <= 1:
            raise ConfigError(
                f"saturation_threshold must be in [0, 1], got {self.saturation_threshold}"
            )


@dataclass(frozen=True, kw_only=True)
class TissueMask:
    """A label mask on a reduced grid of a slide.

    Attributes
    ----------
    labels : ndarray of uint8, shape (H, W)
        :data:`MASK_LABELS`: 0 background, 1 tissue, 2 pen.
    downsample : tuple of 2 float
        Level-0 pixels per mask pixel along ``(y, x)``.
    mpp : tuple of 2 float
        Microns per mask pixel along ``(y, x)``.
    saturation_threshold : float
        Threshold actually used (Otsu's when not given).
    """

    labels: npt.NDArray[np.uint8]
    downsample: tuple[float, float]
    mpp: tuple[float, float]
    saturation_threshold: float

    @property
    def tissue_fraction(self) -> float:
        """Fraction of the slide area that is tissue."""
        return float(np.mean(self.labels == MASK_LABELS["tissue"]))

    @property
    def pen_fraction(self) -> float:
        """Fraction of the slide area covered by pen marks."""
        return float(np.mean(self.labels == MASK_LABELS["pen"]))

    def tissue_in(
        self, start: tuple[int, int], size: tuple[int, int], downsample: float = 1.0
    ) -> float:
        """Fraction of tissue inside a rectangle given in pixels of a level of ``downsample``."""
        scale_y, scale_x = downsample / self.downsample[0], downsample / self.downsample[1]
        y0, x0 = int(start[0] * scale_y), int(start[1] * scale_x)
        y1 = max(int(np.ceil((start[0] + size[0]) * scale_y)), y0 + 1)
        x1 = max(int(np.ceil((start[1] + size[1]) * scale_x)), x0 + 1)
        block = self.labels[y0:y1, x0:x1]
        return float(np.mean(block == MASK_LABELS["tissue"])) if block.size else 0.0

    def summary(self) -> dict[str, float | list[float]]:
        """JSON-ready numbers: fractions, threshold, geometry."""
        return {
            "tissue_fraction": round(self.tissue_fraction, 6),
            "pen_fraction": round(self.pen_fraction, 6),
            "saturation_threshold": round(self.saturation_threshold, 6),
            "mask_mpp": [round(m, 6) for m in self.mpp],
            "downsample": [round(d, 6) for d in self.downsample],
        }


def _hsv(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    from skimage.color import rgb2hsv

    return rgb2hsv(np.moveaxis(rgb[:3], 0, -1)).astype(np.float32)


def _disk(radius_px: float) -> npt.NDArray[np.bool_]:
    from skimage.morphology import disk

    return disk(max(round(radius_px), 1)).astype(bool)


def classify_rgb(
    rgb: npt.NDArray[np.uint8], mpp: float, settings: TissueSettings | None = None
) -> tuple[npt.NDArray[np.uint8], float]:
    """Tissue/pen labels of an RGB thumbnail.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (3, H, W)
        The thumbnail, channel-first.
    mpp : float
        Its microns per pixel (sets morphology sizes).
    settings : TissueSettings, optional

    Returns
    -------
    labels : ndarray of uint8, shape (H, W)
        :data:`MASK_LABELS`.
    threshold : float
        Saturation threshold used.
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu
    from skimage.morphology import remove_small_holes, remove_small_objects

    settings = settings or TissueSettings()
    if rgb.ndim != 3 or rgb.shape[0] < 3:
        raise ConfigError(f"expected an RGB image of shape (3, H, W), got {rgb.shape}")
    hsv = _hsv(rgb)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    if settings.saturation_threshold is not None:
        threshold = settings.saturation_threshold
    else:
        threshold = float(threshold_otsu(sat)) if np.ptp(sat) > 0 else 1.0
        threshold = max(threshold, settings.min_saturation)
    area_px = mpp * mpp
    pen = np.zeros(sat.shape, dtype=bool)
    if settings.pens:
        inked = sat >= settings.pen_min_saturation
        for low, high in settings.pen_hue_ranges:
            pen |= inked & (hue >= low) & (hue < high)
        pen |= val < settings.pen_max_value
        pen = remove_small_objects(pen, max_size=max(int(settings.pen_min_um2 / area_px), 1))
        pen = ndimage.binary_dilation(pen, _disk(settings.pen_dilation_um / mpp))
    tissue = (sat > threshold) & ~((val > settings.max_value) & (sat < 2 * threshold)) & ~pen
    footprint = _disk(settings.closing_um / mpp)
    pad = footprint.shape[0]  # tissue cut by the slide's edge must survive the erosion
    tissue = np.pad(tissue, pad, mode="edge")
    tissue = ndimage.binary_closing(tissue, footprint)[pad:-pad, pad:-pad]
    tissue = remove_small_holes(tissue, max_size=max(int(settings.max_hole_um2 / area_px), 1))
    tissue = remove_small_objects(tissue, max_size=max(int(settings.min_tissue_um2 / area_px), 1))
    labels = tissue.astype(np.uint8)
    labels[pen] = MASK_LABELS["pen"]
    return labels, threshold


def tissue_mask(slide: Slide, settings: TissueSettings | None = None) -> TissueMask:
    """Tissue and pen masks of a slide at ``settings.mask_mpp`` (read from a reduced level).

    The most reduced level at least as fine as ``mask_mpp`` is read whole (at most 64 Mpx) and
    block-averaged to the mask resolution; no full-resolution pixel is read when the slide has a
    pyramid.

    Returns
    -------
    TissueMask
    """
    settings = settings or TissueSettings()
    target = settings.mask_mpp / min(slide.mpp)
    level = slide.level_for_downsample(target)
    rgb = slide.read_level(level)
    factor = max(int(target / slide.levels[level].downsample), 1)
    if factor > 1:
        height, width = (rgb.shape[1] // factor) * factor, (rgb.shape[2] // factor) * factor
        blocks = rgb[:3, :height, :width].reshape(
            3, height // factor, factor, width // factor, factor
        )
        rgb = blocks.mean(axis=(2, 4)).round().astype(np.uint8)
    level_shape = slide.shape
    downsample = (level_shape[0] / rgb.shape[1], level_shape[1] / rgb.shape[2])
    mpp = (slide.mpp[0] * downsample[0], slide.mpp[1] * downsample[1])
    labels, threshold = classify_rgb(rgb, min(mpp), settings)
    return TissueMask(labels=labels, downsample=downsample, mpp=mpp, saturation_threshold=threshold)


def write_mask(mask: TissueMask, path: Path | str) -> Path:
    """Write a mask as PNG or TIFF (keeping its µm/px) plus ``<path>.json`` with its numbers.

    PNG stores the resolution as dots per inch (pHYs), TIFF as pixels per centimetre.

    Raises
    ------
    ImageWriteError
        Unsupported suffix or unwritable folder.
    """
    from PIL import Image as PILImage

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".tif", ".tiff"):
        raise ImageWriteError(f"{path}: write masks as .png or .tif, not {suffix or 'no suffix'}")
    if not path.parent.is_dir():
        raise ImageWriteError(f"{path}: folder {path.parent} does not exist")
    dpi = (25_400.0 / mask.mpp[1], 25_400.0 / mask.mpp[0])
    with atomic_path(path) as tmp:
        if suffix == ".png":
            PILImage.fromarray(mask.labels).save(tmp, format="PNG", dpi=dpi)
        else:
            import tifffile

            per_cm = (1e4 / mask.mpp[1], 1e4 / mask.mpp[0])
            tifffile.imwrite(
                tmp,
                mask.labels,
                resolution=per_cm,
                resolutionunit="CENTIMETER",
                compression="zlib",
            )
    sidecar = path.with_name(path.name + ".json")
    with atomic_path(sidecar) as tmp:
        info = {**mask.summary(), "labels": MASK_LABELS}
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def settings_to_json(settings: TissueSettings) -> str:
    """Indented, sorted JSON of the settings (for provenance next to a mask)."""
    return json.dumps(asdict(settings), indent=2, sort_keys=True)
