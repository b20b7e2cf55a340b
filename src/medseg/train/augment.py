"""On-the-fly augmentation with MONAI dictionary transforms, nnU-Net's recipe (docs/train.md).

| transform (MONAI)                       | p          | range                               |
|-----------------------------------------|------------|-------------------------------------|
| ``RandAffined`` rotation + scaling      | 0.2        | 3D ±30° per axis, 2D ±180°; ×0.7–1.4|
| ``Rand3DElasticd``/``Rand2DElasticd``   | elastic_p  | off by default, as in nnU-Net v2    |
| ``RandGaussianNoised``                  | 0.1        | variance 0–0.1                      |
| ``RandGaussianSmoothd``                 | 0.2        | σ 0.5–1 voxel                       |
| ``RandScaleIntensityd`` (brightness)    | 0.15       | ×0.75–1.25                          |
| ``RandScaleIntensityFixedMeand`` (contrast) | 0.15   | ×0.75–1.25 around the mean, range kept |
| ``RandSimulateLowResolutiond``          | 0.25       | zoom 0.5–1                          |
| ``RandAdjustContrastd`` inverted gamma  | 0.1        | γ 0.7–1.5, statistics kept          |
| ``RandAdjustContrastd`` gamma           | 0.3        | γ 0.7–1.5, statistics kept          |
| ``RandFlipd`` per mirror axis           | 0.5        | —                                   |

Departures from nnU-Net: rotation and scaling share one affine draw (p 0.2) and scale each axis
independently; the affine acts on the sampled patch itself (zero padding at corners) instead of
on a larger crop. Spatial transforms move image and label together (label by nearest neighbour).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai import transforms as mt
from monai.utils import convert_to_tensor

from medseg.train.cascade_augment import JoinPreviousd, RandPerturbPreviousd, SplitPreviousd
from medseg.train.sampling import Batch


def build_augmentation(
    ndim: int,
    *,
    mirror_axes: Sequence[int] = (),
    elastic_prob: float = 0.0,
    lesion_synthesis: mt.Transform | None = None,
    previous_stage_from: int | None = None,
) -> mt.Compose:
    """The training augmentation for one sample ``{"image": (C, *patch), "label": (1, *patch)}``.

    Parameters
    ----------
    ndim : int
        Spatial dimensions of the patch (2 or 3).
    mirror_axes : sequence of int
        Spatial axes (0 = first spatial axis) flipped with probability 0.5 each.
    elastic_prob : float
        Probability of an elastic deformation (expensive on a CPU; 0 as in nnU-Net v2).
    lesion_synthesis : monai transform, optional
        Applied first, so that pasted lesions go through every other transform
        (:class:`medseg.train.lesion_synthesis.RandLesionSynthesisd`).
    previous_stage_from : int, optional
        A cascade stage: image channels from this one on are the previous stage's one-hot
        labels. They move with the spatial transforms (nearest neighbour), skip the intensity
        ones and are perturbed last (:class:`medseg.train.cascade_augment.RandPerturbPreviousd`).

    Returns
    -------
    monai.transforms.Compose
        Call it on a dict of tensors; seed it with ``set_random_state``.
    """
    keys: tuple[str, ...] = ("image", "label")
    modes: tuple[str, ...] = ("bilinear", "nearest")
    if previous_stage_from is not None:
        keys, modes = (*keys, "previous"), (*modes, "nearest")
    rotation = math.radians(30) if ndim == 3 else math.pi
    spatial: list[mt.Transform] = [
        mt.RandAffined(
            keys,
            prob=0.2,
            rotate_range=(rotation,) * (3 if ndim == 3 else 1),
            scale_range=((-0.3, 0.4),) * ndim,
            mode=modes,
            padding_mode="zeros",
        )
    ]
    if elastic_prob > 0:
        elastic = mt.Rand3DElasticd if ndim == 3 else mt.Rand2DElasticd
        spatial.append(
            elastic(
                keys,
                sigma_range=(5, 8),
                magnitude_range=(100, 200),
                prob=elastic_prob,
                mode=modes,
                padding_mode="zeros",
            )
        )
    intensity = [
        mt.RandGaussianNoised("image", prob=0.1, std=math.sqrt(0.1)),
        mt.RandGaussianSmoothd(
            "image", prob=0.2, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)
        ),
        mt.RandScaleIntensityd("image", factors=0.25, prob=0.15),
        mt.RandScaleIntensityFixedMeand("image", factors=0.25, preserve_range=True, prob=0.15),
        mt.RandSimulateLowResolutiond(
            "image",
            prob=0.25,
            zoom_range=(0.5, 1.0),
            upsample_mode="trilinear" if ndim == 3 else "bilinear",
        ),
        mt.RandAdjustContrastd(
            "image", prob=0.1, gamma=(0.7, 1.5), invert_image=True, retain_stats=True
        ),
        mt.RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5), retain_stats=True),
    ]
    mirror = [mt.RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in mirror_axes]
    first = [] if lesion_synthesis is None else [lesion_synthesis]
    transforms = [*first, *spatial, *intensity, *mirror]
    return mt.Compose(_with_previous_stage(transforms, previous_stage_from))


def _with_previous_stage(transforms: list, previous_stage_from: int | None) -> list:
    """``transforms`` between splitting off and joining back a cascade's previous-stage channels."""
    if previous_stage_from is None:
        return transforms
    split = SplitPreviousd(previous_stage_from)
    return [split, *transforms, RandPerturbPreviousd(), JoinPreviousd()]


def training_transform(
    ndim: int,
    *,
    augment: bool,
    mirror_axes: Sequence[int] = (),
    lesion_synthesis: mt.Transform | None = None,
    previous_stage_from: int | None = None,
) -> mt.Compose | None:
    """The transform of the training stream, or ``None`` for raw patches.

    With ``augment`` the full :func:`build_augmentation`; without it (CPU time-budget plans)
    only lesion synthesis, when it is on (it adds training lesions rather than regularising),
    and a cascade's perturbation of the previous stage's channels (``previous_stage_from``).
    """
    if augment:
        return build_augmentation(
            ndim,
            mirror_axes=mirror_axes,
            lesion_synthesis=lesion_synthesis,
            previous_stage_from=previous_stage_from,
        )
    first = [] if lesion_synthesis is None else [lesion_synthesis]
    if not first and previous_stage_from is None:
        return None
    return mt.Compose(_with_previous_stage(first, previous_stage_from))


def augment_batch(
    batch: Batch, transform: mt.Compose, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment every sample of ``batch`` with ``transform`` seeded by ``seed``.

    Returns
    -------
    image : Tensor of float32, shape (B, C, *patch)
    label : Tensor of int16, shape (B, 1, *patch)
        Or float32 (B, C, *patch) when ``batch.label`` holds float soft targets, moved like a
        label map (nearest neighbour; zero outside the image: those voxels count nowhere).
    """
    transform.set_random_state(seed=seed % (2**32))
    soft = np.issubdtype(batch.label.dtype, np.floating)
    images, labels = [], []
    for image, label in zip(batch.image, batch.label, strict=True):
        out = transform({"image": torch.from_numpy(image), "label": torch.from_numpy(label)})
        images.append(convert_to_tensor(out["image"], dtype=torch.float32, track_meta=False))
        moved = convert_to_tensor(out["label"], track_meta=False)
        labels.append(moved.float() if soft else moved.round().to(torch.int16))
    return torch.stack(images), torch.stack(labels)


def to_tensors(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` as tensors without augmentation (validation)."""
    return torch.from_numpy(np.ascontiguousarray(batch.image)), torch.from_numpy(
        np.ascontiguousarray(batch.label)
    )
