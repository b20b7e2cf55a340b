"""Classical interactive segmentation without training: the random walker (Grady 2006).

Seeds come from the prompts: clicks and scribbles seed object / background directly; a box
seeds background outside it and object in an ellipse around its centre; without a box the
border of the region of interest is background. A previous mask (an earlier result, or a
model's mask to correct) is kept as seeds, eroded, except near the clicks and strokes, so that a
correction changes the mask only around where the user pointed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import block_reduce
from skimage.segmentation import random_walker
from skimage.transform import resize

from medseg._typing import BoolArray, FloatArray, SpacingMM
from medseg.interactive.intensity import normalize_intensity
from medseg.interactive.prompts import Box, Prompt, render_prompts

_OBJECT, _BACKGROUND = 1, 2


@dataclass(frozen=True, kw_only=True)
class RandomWalkerEngine:
    """Random walker on the region of interest, downsampled to at most ``max_voxels``.

    Parameters
    ----------
    beta : float
        Edge weight sharpness of :func:`skimage.segmentation.random_walker`.
    max_voxels : int
        Larger regions are block-averaged by an integer factor first (speed), and the
        probabilities interpolated back.
    seed_radius : int
        Clicks are thickened to balls of this radius (working voxels).
    inner_fraction : float
        A box seeds object inside an ellipse of this fraction of its half-extents.
    free_radius : int
        Previous-mask seeds are dropped within this distance (working voxels) of a click or
        stroke, where the new prompt decides.
    """

    beta: float = 130.0
    max_voxels: int = 48**3
    seed_radius: int = 1
    inner_fraction: float = 0.25
    free_radius: int = 6
    name: str = "classical"

    def predict(
        self,
        roi_image: FloatArray,
        prompts: Sequence[Prompt],
        prev_mask: BoolArray | None,
        *,
        spacing: SpacingMM,
    ) -> FloatArray:
        """See :meth:`medseg.interactive.engine.Engine.predict`."""
        shape = roi_image.shape[1:]
        ndim = len(shape)
        factor = max(1, int(np.ceil((np.prod(shape) / self.max_voxels) ** (1 / ndim))))
        image = normalize_intensity(roi_image)
        maps = render_prompts(prompts, shape)
        pos, neg = maps.positive, maps.negative
        prev = prev_mask
        if factor > 1:
            block = (factor,) * ndim
            image = np.stack([block_reduce(c, block, np.mean) for c in image])
            pos = block_reduce(pos, block, np.max)
            neg = block_reduce(neg, block, np.max)
            if prev is not None:
                prev = block_reduce(prev, block, np.mean) >= 0.5
        work = image.shape[1:]
        labels = np.zeros(work, dtype=np.int32)
        ball = ndimage.generate_binary_structure(ndim, 1)
        if prev is not None and prev.any():
            clicked = pos | neg
            far = (
                ndimage.distance_transform_edt(~clicked) > self.free_radius
                if clicked.any()
                else np.ones(work, dtype=bool)
            )
            labels[ndimage.binary_erosion(~prev, ball, 2) & far] = _BACKGROUND
            labels[ndimage.binary_erosion(prev, ball, 2) & far] = _OBJECT
        boxes = [p for p in prompts if isinstance(p, Box)]
        if boxes:
            self._box_seeds(labels, boxes, factor)
        else:
            border = np.ones(work, dtype=bool)
            border[tuple(slice(1, -1) for _ in work)] = False
            labels[border & ~ndimage.binary_dilation(pos, ball, 2)] = _BACKGROUND
        if self.seed_radius:
            pos = ndimage.binary_dilation(pos, ball, self.seed_radius)
            neg = ndimage.binary_dilation(neg, ball, self.seed_radius)
        labels[pos] = _OBJECT
        labels[neg] = _BACKGROUND
        if not (labels == _OBJECT).any() or not (labels == _BACKGROUND).any() or labels.all():
            prob = (labels == _OBJECT).astype(np.float32)  # nothing left to decide
        else:
            sp = np.asarray(spacing, dtype=float)
            with warnings.catch_warnings():  # slightly out-of-range values are clipped below
                warnings.filterwarnings("ignore", message="The probability range")
                full = random_walker(
                    image,
                    labels,
                    beta=self.beta,
                    mode="cg_j",
                    tol=1e-3,
                    channel_axis=0,
                    return_full_prob=True,
                    spacing=sp / sp.min(),
                )
            prob = full[0].astype(np.float32)
        if factor > 1:
            prob = resize(prob, shape, order=1, mode="edge", anti_aliasing=False)
        return np.clip(prob, 0.0, 1.0).astype(np.float32)

    def _box_seeds(self, labels: np.ndarray, boxes: Sequence[Box], factor: int) -> None:
        """Background outside every box (on its slice for a one-slice box), object at centres."""
        work = np.asarray(labels.shape)
        inside_any = np.zeros(labels.shape, dtype=bool)
        centres = np.zeros(labels.shape, dtype=bool)
        planes: list[tuple[int, int]] = []
        grid = np.indices(labels.shape, dtype=np.float32)
        for box in boxes:
            lo = np.clip(np.asarray(box.lo) // factor, 0, work - 1)
            hi = np.clip(np.asarray(box.hi) // factor, 0, work - 1)
            inside_any[tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))] = True
            centre = (lo + hi) / 2
            semi = np.maximum(self.inner_fraction * (hi - lo + 1) / 2, 0.5)
            dist = sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, semi, strict=True))
            centres |= dist <= 1.0
            if box.plane_axis is not None:
                planes.append((box.plane_axis, int(lo[box.plane_axis])))
        outside = ~inside_any
        if len(planes) == len(boxes):
            on_planes = np.zeros(labels.shape, dtype=bool)
            for axis, index in planes:
                on_planes[(slice(None),) * axis + (index,)] = True
            outside &= on_planes
        labels[outside] = _BACKGROUND
        labels[centres] = _OBJECT
