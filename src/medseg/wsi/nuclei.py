"""Nuclei instances: synthetic microscopy with ground truth, and the classical watershed baseline.

The baseline needs no training: a nuclear stain channel (haematoxylin from H&E through
``skimage.color.rgb2hed``, or a fluorescence channel as is), Otsu's threshold, the distance
transform of the foreground, one marker per distance peak (``min_distance_px`` apart), marker
watershed on the inverted distance, and small objects dropped. The same marker watershed turns a
learned foreground probability and centre map into instances (:func:`instances_from_maps`).

Images are channel-first ``(C, H, W)``; instance maps are ``(H, W)`` int32 with 0 background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medseg.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class NucleiSpec:
    """Synthetic fluorescence-like nuclei (touching, elliptical, noisy, uneven brightness).

    Attributes
    ----------
    shape : tuple of 2 int
        Image ``(height, width)``.
    count : int
        Nuclei placed (some overlap and are clipped by later ones).
    radius : tuple of 2 float
        Range of semi-axes in pixels.
    noise : float
        Gaussian noise standard deviation (image in [0, 1]).
    blur : float
        Optical blur sigma in pixels.
    """

    shape: tuple[int, int] = (128, 128)
    count: int = 40
    radius: tuple[float, float] = (4.0, 9.0)
    noise: float = 0.06
    blur: float = 1.2


def synthetic_nuclei(
    spec: NucleiSpec, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """One synthetic image and its instance labels.

    Returns
    -------
    image : ndarray of float32, shape (1, H, W)
        Intensities in about [0, 1] (bright nuclei on dark background).
    labels : ndarray of int32, shape (H, W)
        Instances 1..n (a nucleus hidden entirely by later ones is absent).
    """
    from scipy import ndimage

    height, width = spec.shape
    labels = np.zeros(spec.shape, dtype=np.int32)
    brightness = np.zeros(spec.shape, dtype=np.float32)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    for index in range(1, spec.count + 1):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        a, b = rng.uniform(*spec.radius, size=2)
        angle = rng.uniform(0, np.pi)
        cos, sin = np.cos(angle), np.sin(angle)
        u = ((yy - cy) * cos + (xx - cx) * sin) / a
        v = (-(yy - cy) * sin + (xx - cx) * cos) / b
        inside = u * u + v * v <= 1.0
        labels[inside] = index
        brightness[inside] = rng.uniform(0.5, 1.0) * (1.0 - 0.3 * (u * u + v * v)[inside])
    labels = _relabel(labels)
    image = ndimage.gaussian_filter(brightness, spec.blur) + 0.08
    image = image + rng.normal(0.0, spec.noise, size=spec.shape).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32)[None], labels


def _relabel(labels: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Consecutive ids; pieces of one id split by a later nucleus keep only the largest part."""
    from scipy import ndimage

    out = np.zeros_like(labels)
    next_id = 1
    for obj in np.unique(labels):
        if obj == 0:
            continue
        parts, count = ndimage.label(labels == obj)
        if count > 1:
            sizes = np.bincount(parts.ravel())[1:]
            parts = np.where(parts == 1 + int(np.argmax(sizes)), 1, 0)
        if parts.any():
            out[parts > 0] = next_id
            next_id += 1
    return out


def nuclear_channel(
    image: npt.NDArray[np.generic], *, stain: str = "auto"
) -> npt.NDArray[np.float32]:
    """The channel nuclei are bright in, scaled to [0, 1].

    Parameters
    ----------
    image : ndarray, shape (C, H, W)
        One fluorescence channel (C = 1) or RGB brightfield (C = 3).
    stain : {"auto", "fluorescence", "hematoxylin"}
        ``auto``: haematoxylin (``rgb2hed``) for 3 channels, the channel itself for 1.
    """
    from skimage.color import rgb2hed

    if image.ndim != 3:
        raise ConfigError(f"expected an image of shape (C, H, W), got {image.shape}")
    if stain == "auto":
        stain = "hematoxylin" if image.shape[0] == 3 else "fluorescence"
    if stain == "hematoxylin":
        if image.shape[0] != 3:
            raise ConfigError(f"hematoxylin needs an RGB image, got {image.shape[0]} channel(s)")
        rgb = np.moveaxis(np.asarray(image), 0, -1)
        rgb = rgb.astype(np.float32) / (255.0 if rgb.dtype == np.uint8 else 1.0)
        channel = rgb2hed(rgb)[..., 0]
    elif stain == "fluorescence":
        channel = np.asarray(image[0], dtype=np.float32)
    else:
        raise ConfigError(f"stain must be auto, fluorescence or hematoxylin, got {stain!r}")
    low, high = np.percentile(channel, [0.5, 99.5])
    return np.clip((channel - low) / max(high - low, 1e-6), 0, 1).astype(np.float32)


def watershed_nuclei(
    image: npt.NDArray[np.generic],
    *,
    stain: str = "auto",
    min_distance_px: int = 4,
    min_area_px: int = 12,
) -> npt.NDArray[np.int32]:
    """Classical nuclei instances: Otsu foreground, distance-transform markers, watershed.

    Parameters
    ----------
    image : ndarray, shape (C, H, W)
    stain : str
        See :func:`nuclear_channel`.
    min_distance_px : int
        Minimum distance between two nucleus centres (about the smallest radius).
    min_area_px : int
        Smaller objects are dropped.

    Returns
    -------
    ndarray of int32, shape (H, W)
    """
    from skimage.filters import threshold_otsu

    channel = nuclear_channel(image, stain=stain)
    foreground = channel > threshold_otsu(channel) if np.ptp(channel) > 0 else channel > 1
    return _marker_watershed(
        foreground, None, min_distance_px=min_distance_px, min_area_px=min_area_px
    )


def instances_from_maps(
    foreground: npt.NDArray[np.floating],
    centre: npt.NDArray[np.floating],
    *,
    threshold: float = 0.5,
    min_distance_px: int = 4,
    min_area_px: int = 12,
) -> npt.NDArray[np.int32]:
    """Instances from a learned foreground probability and centre-ness map (0 edge, 1 centre).

    Markers are the centre map's peaks inside the foreground; the watershed floods the
    inverted centre map.
    """
    return _marker_watershed(
        np.asarray(foreground) > threshold,
        np.asarray(centre, dtype=np.float32),
        min_distance_px=min_distance_px,
        min_area_px=min_area_px,
    )


def _marker_watershed(
    foreground: npt.NDArray[np.bool_],
    relief: npt.NDArray[np.float32] | None,
    *,
    min_distance_px: int,
    min_area_px: int,
) -> npt.NDArray[np.int32]:
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.morphology import remove_small_objects
    from skimage.segmentation import watershed

    foreground = ndimage.binary_fill_holes(ndimage.binary_opening(foreground))
    if relief is None:
        relief = ndimage.distance_transform_edt(foreground).astype(np.float32)
        relief = ndimage.gaussian_filter(relief, 1.0)
    parts, _ = ndimage.label(foreground)
    peaks = peak_local_max(
        relief, min_distance=max(min_distance_px, 1), labels=parts, exclude_border=False
    )
    markers = np.zeros(foreground.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    labels = watershed(-relief, markers, mask=foreground)
    labels = remove_small_objects(labels, max_size=max(min_area_px - 1, 0))
    return _consecutive(labels)


def _consecutive(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.int32]:
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels.astype(np.int32))[0]
