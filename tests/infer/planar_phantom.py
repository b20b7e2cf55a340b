"""An anisotropic, non-cubic box phantom and planar plans that resample nothing (shared by the
planar prediction and ensemble tests)."""

from __future__ import annotations

import numpy as np

from medseg.io import Image
from medseg.plan.plan import ChannelNormalization, Configuration, NetworkConfig, Plan

SHAPE = (7, 12, 10)
SPACING = (3.0, 0.8, 1.1)
BOX = (slice(2, 5), slice(3, 9), slice(1, 6))


def planar_plan(plane: int, neighbours: int, transpose: tuple[int, ...]) -> Plan:
    """No crop, no normalisation and the image's own in-plane spacing: nothing is resampled."""
    grid_spacing = [SPACING[a] for a in (transpose or (0, 1, 2))]
    in_plane = tuple(grid_spacing[a] for a in range(3) if a != plane)
    network = NetworkConfig(
        filters=(4, 8, 8),
        kernel_sizes=((3, 3),) * 3,
        strides=((1, 1), (2, 2), (2, 2)),
        deep_supervision=False,
    )
    config = Configuration(
        name="2.5d",
        spacing=in_plane,
        patch_size=(8, 8),
        batch_size=2,
        network=network,
        plane=plane,
        neighbours=neighbours,
    )
    return Plan(
        dataset_name="Box",
        channel_names={0: "MR"},
        labels={"background": 0, "box": 1, "other": 2},
        num_classes=3,
        normalization=(ChannelNormalization(scheme="none"),),
        crop_to_nonzero=False,
        transpose=transpose,
        configurations={"2.5d": config},
        default_configuration="2.5d",
        num_folds=2,
    )


def box_image() -> Image:
    array = np.zeros(SHAPE, np.float32)
    array[BOX] = 1.0
    return Image.from_array(array[None], SPACING, (4.0, -2.0, 9.5))
