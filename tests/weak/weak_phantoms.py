"""Helpers of the medseg.weak tests: tiny complete label maps and an on-disk nnU-Net dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.data.dataset import LabelSpec
from medseg.data.nnunet import write_dataset_json
from medseg.io import Image, read_image, write_image

LABELS = LabelSpec(labels={"background": 0, "organ": 1, "lesion": 2})


def phantom_label(shift: int = 0) -> np.ndarray:
    """(16, 24, 24) map: a ball of organ (1) holding two small lesions (2)."""
    z, y, x = np.indices((16, 24, 24))
    label = np.zeros((16, 24, 24), np.int16)
    label[(z - 8) ** 2 + (y - 12 - shift) ** 2 + (x - 12) ** 2 <= 49] = 1
    label[7:9, 10 - shift : 12 - shift, 9:11] = 2
    label[9:11, 13 - shift : 15 - shift, 14:16] = 2
    return label


def write_phantom_dataset(root: Path, cases: int = 3) -> Path:
    """An nnU-Net dataset of ``cases`` phantoms (image = label + noise), spacing (2, 1, 1) mm."""
    rng = np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(cases):
        label = phantom_label(shift=i)
        image = label.astype(np.float32) * 100 + rng.normal(0, 5, label.shape).astype(np.float32)
        geometry = {"spacing": (2.0, 1.0, 1.0), "origin": (0.0, 0.0, 0.0), "direction": np.eye(3)}
        write_image(Image(image[None], **geometry), root / "imagesTr" / f"case_{i}_0000.nii.gz")
        write_image(Image(label[None], **geometry), root / "labelsTr" / f"case_{i}.nii.gz")
    write_dataset_json(
        root, channel_names={0: "CT"}, labels=LABELS, num_training=cases, file_ending=".nii.gz"
    )
    return root


def write_stray_value(path: Path, value: int = 7) -> np.ndarray:
    """Put ``value`` (a label outside the classes) in the first voxel of the label file at
    ``path``; returns the array written, shape (1, Z, Y, X)."""
    label = read_image(path)
    array = label.array.copy()
    array[0, 0, 0, 0] = value
    write_image(label.with_array(array), path)
    return array
