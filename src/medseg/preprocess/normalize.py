"""Intensity normalisation per channel, as planned in ``Plan.normalization`` (docs/plan.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from medseg.errors import ConfigError
from medseg.plan.plan import ChannelNormalization

EPS = 1e-8


def normalize(
    array: npt.NDArray,
    schemes: Sequence[ChannelNormalization],
    mask: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.float32]:
    """Normalise each channel of ``array`` by its scheme; returns a new float32 array.

    Parameters
    ----------
    array : ndarray, shape (C, Z, Y, X)
        Raw intensities (e.g. HU for CT).
    schemes : sequence of ChannelNormalization
        One per channel.
    mask : ndarray of bool, shape (Z, Y, X), optional
        Nonzero region. A z-score channel with ``use_mask`` takes its statistics inside the mask
        and is set to 0 outside it.

    Returns
    -------
    ndarray of float32, shape (C, Z, Y, X)

    Raises
    ------
    ConfigError
        If the number of schemes differs from the number of channels, or CT statistics are
        missing.
    """
    if len(schemes) != array.shape[0]:
        raise ConfigError(
            f"plan normalisation lists {len(schemes)} channels but the image has "
            f"{array.shape[0]}; re-plan for this dataset"
        )
    out = np.empty(array.shape, np.float32)
    for c, scheme in enumerate(schemes):
        out[c] = _channel(array[c].astype(np.float32, copy=False), scheme, mask, c)
    return out


def _channel(x: npt.NDArray[np.float32], scheme: ChannelNormalization, mask, index: int):
    if scheme.scheme == "ct":
        if None in (scheme.clip_low, scheme.clip_high, scheme.mean, scheme.std):
            raise ConfigError(f"normalization[{index}]: CT needs clip_low, clip_high, mean and std")
        clipped = np.clip(x, scheme.clip_low, scheme.clip_high)
        return (clipped - np.float32(scheme.mean)) / np.float32(max(scheme.std, EPS))
    if scheme.scheme == "zscore":
        if scheme.use_mask and mask is not None and mask.any():
            values = x[mask]
            result = (x - values.mean()) / max(float(values.std()), EPS)
            result[~mask] = 0
            return result
        return (x - x.mean()) / max(float(x.std()), EPS)
    if scheme.scheme == "rescale_0_1":
        low, high = float(x.min()), float(x.max())
        return (x - low) / max(high - low, EPS)
    if scheme.scheme == "rgb_0_1":
        return x / np.float32(255.0)
    return x.copy()
