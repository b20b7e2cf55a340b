"""Robustness of instance segmentation: corruptions at several strengths and each metric's drop.

A :class:`Corruption` is one kind at one strength, applied to an RGB brightfield image
``(3, H, W)`` uint8 (what slides give). Strength units per kind:

- ``noise``: standard deviation of additive Gaussian noise, as a fraction of 255;
- ``blur``: Gaussian blur sigma in pixels (optical defocus);
- ``jpeg``: JPEG quality 1-95 (lower is stronger), through Pillow;
- ``contrast``: factor towards each channel's mean (1 = unchanged, 0 = flat);
- ``stain``: stain shift, the fraction of the haematoxylin optical-density vector mixed into the
  eosin one (a purplish eosin, unlike scikit-image's reference matrix, so that colour
  deconvolution leaks eosin into the haematoxylin channel), with the haematoxylin amount
  faded by the same fraction.

:func:`robustness_report` scores segmentation methods on clean and corrupted copies of the same
cases and reports, per method, kind and strength, the mean F1 at IoU 0.5, PQ and AJI and their
drop from the clean images. :func:`brightfield_from_fluorescence` renders H&E-like RGB from the
synthetic fluorescence nuclei of :mod:`medseg.wsi.nuclei`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medseg.errors import ConfigError

#: The kinds :func:`corrupt` applies.
KINDS = ("noise", "blur", "jpeg", "contrast", "stain")
METRICS = ("f1", "pq", "aji")


@dataclass(frozen=True, kw_only=True)
class Corruption:
    """One corruption: ``kind`` (one of :data:`KINDS`) at ``strength`` (units: module docstring)."""

    kind: str
    strength: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"corruption {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.kind == "jpeg" and not 1 <= self.strength <= 95:
            raise ConfigError(f"jpeg quality {self.strength}: use 1 to 95")
        if self.kind == "contrast" and not 0 <= self.strength <= 1:
            raise ConfigError(f"contrast factor {self.strength}: use 0 (flat) to 1 (unchanged)")
        if self.kind != "jpeg" and self.strength < 0:
            raise ConfigError(f"{self.kind} strength {self.strength}: must be >= 0")


def default_corruptions() -> tuple[Corruption, ...]:
    """Three strengths of every kind, mild to severe."""
    strengths = {
        "noise": (0.05, 0.1, 0.2),
        "blur": (1.0, 2.0, 3.0),
        "jpeg": (75, 30, 10),
        "contrast": (0.7, 0.4, 0.2),
        "stain": (0.15, 0.3, 0.5),
    }
    return tuple(Corruption(kind=k, strength=float(s)) for k in KINDS for s in strengths[k])


def corrupt(
    rgb: npt.NDArray[np.uint8],
    corruption: Corruption,
    rng: np.random.Generator | None = None,
) -> npt.NDArray[np.uint8]:
    """A corrupted copy of ``rgb`` (3, H, W) uint8; ``rng`` draws the noise (``noise`` only)."""
    if rgb.ndim != 3 or rgb.shape[0] != 3 or rgb.dtype != np.uint8:
        raise ConfigError(f"expected an RGB image (3, H, W) uint8, got {rgb.shape} {rgb.dtype}")
    kind, strength = corruption.kind, corruption.strength
    image = rgb.astype(np.float64)
    if kind == "noise":
        if rng is None:
            raise ConfigError("noise needs a random generator (rng)")
        image = image + rng.normal(0.0, 255.0 * strength, size=image.shape)
    elif kind == "blur":
        from scipy import ndimage

        image = ndimage.gaussian_filter(image, (0, strength, strength))
    elif kind == "jpeg":
        return _jpeg(rgb, round(strength))
    elif kind == "contrast":
        mean = image.mean(axis=(1, 2), keepdims=True)
        image = mean + strength * (image - mean)
    else:
        image = _stain_shift(image, strength)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _jpeg(rgb: npt.NDArray[np.uint8], quality: int) -> npt.NDArray[np.uint8]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.moveaxis(rgb, 0, -1)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.moveaxis(np.asarray(Image.open(buffer).convert("RGB")), -1, 0).copy()


def _stain_shift(image: npt.NDArray[np.float64], fraction: float) -> npt.NDArray[np.float64]:
    from skimage.color import hed_from_rgb, rgb_from_hed

    density = -np.log(np.maximum(np.moveaxis(image, 0, -1), 1.0) / 255.0)
    stains = density @ hed_from_rgb  # (H, W, 3) amounts of haematoxylin, eosin, DAB
    shifted = rgb_from_hed.copy()
    shifted[1] = (1.0 - fraction) * rgb_from_hed[1] + fraction * rgb_from_hed[0]
    shifted[1] *= np.linalg.norm(rgb_from_hed[1]) / np.linalg.norm(shifted[1])
    stains[..., 0] *= 1.0 - fraction
    return np.moveaxis(255.0 * np.exp(-(stains @ shifted)), -1, 0)


def brightfield_from_fluorescence(
    image: npt.NDArray[np.floating],
    rng: np.random.Generator,
    *,
    eosin: float = 0.3,
    haematoxylin: float = 1.2,
) -> npt.NDArray[np.uint8]:
    """H&E-like RGB ``(3, H, W)`` uint8 from a fluorescence-like ``(1, H, W)`` image in [0, 1].

    The nuclear signal becomes the haematoxylin optical density (times ``haematoxylin``);
    eosin (cytoplasm, stroma) stains everything with a smooth random texture of mean ``eosin``
    (from 0.2 to 1.8 times it, blobs of about 8 pixels, drawn from ``rng``). Both are mixed with
    scikit-image's reference H&E vectors (Beer-Lambert).
    """
    from scipy import ndimage
    from skimage.color import rgb_from_hed

    if image.ndim != 3 or image.shape[0] != 1:
        raise ConfigError(f"expected one channel (1, H, W), got {image.shape}")
    signal = np.clip(np.asarray(image[0], dtype=np.float64), 0.0, 1.0)
    texture = ndimage.gaussian_filter(rng.normal(size=signal.shape), 4.0)
    texture = (texture - texture.min()) / max(float(np.ptp(texture)), 1e-9)
    stains = np.stack(
        [haematoxylin * signal, eosin * (0.2 + 1.6 * texture), np.zeros_like(signal)], axis=-1
    )
    rgb = 255.0 * np.exp(-(stains @ rgb_from_hed))
    return np.moveaxis(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), -1, 0)


@dataclass(frozen=True, kw_only=True)
class RobustnessRow:
    """Mean scores of one method under one corruption (``kind`` "clean" for the originals).

    ``drop_*`` is the clean mean minus this mean (positive = worse than on clean images).
    """

    method: str
    kind: str
    strength: float
    f1: float
    pq: float
    aji: float
    drop_f1: float
    drop_pq: float
    drop_aji: float


def robustness_report(
    methods: Mapping[str, Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.integer]]],
    cases: Sequence[tuple[npt.NDArray[np.uint8], npt.NDArray[np.integer]]],
    corruptions: Sequence[Corruption] | None = None,
    *,
    seed: int = 0,
    iou_threshold: float = 0.5,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[RobustnessRow]:
    """Score every method on clean and corrupted cases; one row per method and corruption.

    Parameters
    ----------
    methods : mapping of name to callable
        Each maps an RGB image (3, H, W) uint8 to an instance map (H, W).
    cases : sequence of (image, reference instances)
    corruptions : sequence of Corruption, optional
        Default :func:`default_corruptions`. Every method sees the same corrupted images.
    seed : int
        Seeds the noise (the same draws for every method).
    on_progress : callable, optional
        ``on_progress(done, total)`` after each corrupted set.
    """
    from medseg.evaluate.instances import instance_metrics

    if not cases:
        raise ConfigError("robustness_report needs at least one case")
    chosen = tuple(default_corruptions() if corruptions is None else corruptions)
    settings: list[Corruption | None] = [None, *chosen]
    means: dict[tuple[str, int], dict[str, float]] = {}
    for index, corruption in enumerate(settings):
        rng = np.random.default_rng(seed)
        images = [image if corruption is None else corrupt(image, corruption, rng)
                  for image, _ in cases]  # fmt: skip
        for name, method in methods.items():
            scores = [instance_metrics(method(image), truth, iou_threshold=iou_threshold)
                      for image, (_, truth) in zip(images, cases, strict=True)]  # fmt: skip
            means[name, index] = {m: float(np.nanmean([getattr(s, m) for s in scores]))
                                  for m in METRICS}  # fmt: skip
        if on_progress is not None:
            on_progress(index + 1, len(settings))
    rows = []
    for name in methods:
        clean = means[name, 0]
        for index, corruption in enumerate(settings):
            mean = means[name, index]
            rows.append(
                RobustnessRow(
                    method=name,
                    kind="clean" if corruption is None else corruption.kind,
                    strength=0.0 if corruption is None else corruption.strength,
                    **mean,
                    **{f"drop_{m}": clean[m] - mean[m] for m in METRICS},
                )
            )
    return rows
