"""Put continuous maps (probabilities, uncertainty) back on the input's voxel grid.

Label maps go through :func:`medseg.preprocess.restore_to_original` (slab-wise resampling plus
argmax). Continuous maps use the same slab-wise resampling (:func:`resampled_slabs`: linear,
order 0 along a separate anisotropic axis) and are written straight into an output array of
the final dtype, so no full-resolution float32 copy of all classes is ever held. Voxels outside
the nonzero crop get ``fill`` per channel (background probability 1, uncertainty 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from medseg.io import Image
from medseg.preprocess import CaseProperties, resampled_slabs


def restore_maps(
    maps: torch.Tensor,
    props: CaseProperties,
    *,
    dtype: npt.DTypeLike = np.float16,
    fill: Sequence[float] | None = None,
    slab: int = 8,
) -> Image:
    """Resample ``(K, Z', Y', X')`` maps to the original grid of the case.

    Parameters
    ----------
    maps : torch.Tensor, shape (K, Z', Y', X')
        Values on the preprocessed grid (e.g. probabilities in [0, 1]).
    props : CaseProperties
        From :func:`medseg.preprocess.preprocess_image`.
    dtype : numpy dtype
        Output dtype. For ``uint8`` the values are scaled: ``round(value * 255)``.
    fill : sequence of float, optional
        Value per channel outside the crop; zeros by default.
    slab : int
        Output slices resampled per step.

    Returns
    -------
    Image
        ``(K, *props.spatial_shape)`` with the original spacing, origin and direction.
    """
    channels = int(maps.shape[0])
    dtype = np.dtype(dtype)
    scale = 255.0 if dtype == np.uint8 else 1.0
    fill_values = np.zeros(channels) if fill is None else np.asarray(fill, dtype=float)
    full_shape = (1, *props.spatial_shape) if len(props.spatial_shape) == 2 else props.spatial_shape
    out = np.empty((channels, *full_shape), dtype)
    out[...] = (fill_values * scale).astype(dtype).reshape(-1, *([1] * len(full_shape)))
    crop = props.crop_view(out)  # network axis order (transpose applied), a view into out
    axis = 0 if props.separate_axis is None else props.separate_axis
    moved = np.moveaxis(crop, axis + 1, 0)  # (streaming axis, K, ...)
    for start, stop, values in resampled_slabs(
        maps, tuple(crop.shape[1:]), separate_axis=props.separate_axis, slab=slab
    ):
        if scale != 1.0:
            values = (values.clamp(0, 1) * scale).round()
        moved[start:stop] = values.numpy().astype(dtype)
    if len(props.spatial_shape) == 2:
        out = out[:, 0]
    return Image(
        array=out,
        spacing=props.spacing,
        origin=props.origin,
        direction=np.asarray(props.direction),
        meta={"case_id": props.case_id},
    )
