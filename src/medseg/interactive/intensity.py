"""Intensity normalisation shared by the interactive engines and their training."""

from __future__ import annotations

import numpy as np

from medseg._typing import FloatArray


def normalize_intensity(image: FloatArray, *, spatial_dims: int | None = None) -> FloatArray:
    """Clip each channel to its 0.5-99.5 percentiles, then z-score it.

    Parameters
    ----------
    image : ndarray, shape (C, ...) or (B, C, H, W)
        Raw intensities.
    spatial_dims : int, optional
        How many trailing axes form one channel (default: all but the first). With a batch
        of slices, ``spatial_dims=2`` normalises every slice's channels on their own, in one
        vectorised pass.

    Returns
    -------
    ndarray of float32, same shape
        Zero mean, unit variance per channel (a constant channel becomes zeros).
    """
    spatial_dims = image.ndim - 1 if spatial_dims is None else spatial_dims
    axes = tuple(range(image.ndim - spatial_dims, image.ndim))
    lo, hi = np.percentile(image, (0.5, 99.5), axis=axes, keepdims=True)
    clipped = np.clip(image.astype(np.float32), lo.astype(np.float32), hi.astype(np.float32))
    mean = clipped.mean(axis=axes, keepdims=True)
    std = clipped.std(axis=axes, keepdims=True)
    return np.where(std > 0, (clipped - mean) / np.where(std > 0, std, 1), 0).astype(np.float32)
