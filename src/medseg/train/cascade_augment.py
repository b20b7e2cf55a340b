"""Training-time handling of a cascade's previous-stage channels (see :mod:`medseg.train.cascade`).

In the augmentation the channels are split off the image (:class:`SplitPreviousd`), moved with
the spatial transforms by nearest neighbour, kept out of the intensity transforms, perturbed
(:class:`RandPerturbPreviousd`) and joined back (:class:`JoinPreviousd`). Patches are
channel-first, ``(C, Z, Y, X)``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_numpy
from scipy import ndimage

OPERATOR_P = 0.4
COMPONENT_P = 0.2
MAX_RADIUS = 8
"""Morphological operators use 1 to ``MAX_RADIUS - 1`` iterations of a 6-connected element."""
MAX_COMPONENT_SHARE = 0.15
"""Only components covering less than this fraction of the patch are removed (nnU-Net)."""


class RandPerturbPreviousd(RandomizableTransform, MapTransform):
    """Degrade one-hot channels (``d[key]``, ``(L, *patch)``) as nnU-Net's cascade does.

    With probability :data:`OPERATOR_P` a sample has each channel, in random order, dilated,
    eroded, opened or closed by 1 to 7 iterations of a 6-connected element (voxels a channel
    gains are taken from the others, so the channels stay one-hot); with probability
    :data:`COMPONENT_P` each channel loses one random connected component smaller than
    :data:`MAX_COMPONENT_SHARE` of the patch.
    """

    def __init__(self, key: Hashable = "previous") -> None:
        MapTransform.__init__(self, (key,))
        RandomizableTransform.__init__(self, 1.0)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        out = dict(data)
        key = self.keys[0]
        rng = np.random.default_rng(self.R.randint(0, 2**31 - 1, size=4))
        channels = convert_to_numpy(out[key]) > 0.5
        if rng.random() < OPERATOR_P:
            channels = _morphology(channels, rng)
        if rng.random() < COMPONENT_P:
            channels = _drop_component(channels, rng)
        out[key] = torch.from_numpy(channels.astype(np.float32))
        return out


class SplitPreviousd(MapTransform):
    """``d["image"]`` ``(C + L, ...)`` -> ``d["image"]`` ``(C, ...)`` and ``d["previous"]``."""

    def __init__(self, image_channels: int) -> None:
        super().__init__(("image",))
        self.image_channels = image_channels

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        image = out["image"]
        out["image"], out["previous"] = image[: self.image_channels], image[self.image_channels :]
        return out


class JoinPreviousd(MapTransform):
    """The inverse of :class:`SplitPreviousd`."""

    def __init__(self) -> None:
        super().__init__(("image", "previous"))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        image = torch.as_tensor(out["image"], dtype=torch.float32)
        previous = torch.as_tensor(out.pop("previous"), dtype=torch.float32)
        out["image"] = torch.cat([image, previous])
        return out


def _morphology(channels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    structure = ndimage.generate_binary_structure(channels.ndim - 1, 1)
    result = channels.copy()
    for index in rng.permutation(len(channels)):
        name = ("dilation", "erosion", "opening", "closing")[int(rng.integers(4))]
        operator = getattr(ndimage, f"binary_{name}")
        iterations = int(rng.integers(1, MAX_RADIUS))
        changed = operator(result[index], structure=structure, iterations=iterations)
        gained = changed & ~result[index]
        result[:, gained] = False
        result[index] = changed
    return result


def _drop_component(channels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    result = channels.copy()
    limit = MAX_COMPONENT_SHARE * result[0].size
    for index in range(len(result)):
        components, count = ndimage.label(result[index])
        if count == 0:
            continue
        sizes = np.bincount(components.ravel())[1:]
        small = np.flatnonzero(sizes < limit) + 1
        if len(small):
            result[index][components == int(rng.choice(small))] = False
    return result
