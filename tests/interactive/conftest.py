"""Seeded synthetic images for the interactive tests: bright spheres and disks in noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.data import write_dataset_json
from medseg.interactive.learned import LearnedEngine
from medseg.interactive.network import InteractiveModelConfig, build_network
from medseg.io import Image, write_image


def ball(shape: tuple[int, ...], centre: tuple[float, ...], radius: float) -> np.ndarray:
    """Boolean ball (disk in 2D) of ``radius`` voxels around ``centre``."""
    grid = np.indices(shape, dtype=float)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def disk_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 64x64 image (noise sd 0.15) with a bright disk of radius 12 at (30, 34)."""
    disk = ball((64, 64), (30, 34), 12)
    return disk + rng.normal(0, 0.15, disk.shape), disk


@pytest.fixture
def sphere_image(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 24x28x26 volume (noise sd 0.15) with a bright sphere of radius 7."""
    sphere = ball((24, 28, 26), (11, 14, 12), 7)
    return sphere + rng.normal(0, 0.15, sphere.shape), sphere


@pytest.fixture
def sphere_dataset(tmp_path: Path, rng: np.random.Generator) -> Path:
    """nnU-Net raw folder, three 20x22x24 cases at 2 mm: label 1 a sphere, label 2 a cube."""
    root = tmp_path / "Dataset001_Spheres"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    geometry = {"spacing": (2.0, 2.0, 2.0), "origin": (0.0, 0.0, 0.0)}
    for i in range(3):
        shape = (20, 22, 24)
        label = np.zeros(shape, dtype=np.uint8)
        label[ball(shape, (9 + i, 10, 8), 5)] = 1
        label[4:9, 13:19, 14:21] = 2
        image = 100.0 * (label > 0) + 40.0 * (label == 2) + rng.normal(0, 10, shape)
        image_path = root / "imagesTr" / f"case{i}_0000.nii.gz"
        write_image(Image.from_array(image[None].astype(np.float32), **geometry), image_path)
        write_image(
            Image.from_array(label[None], **geometry), root / "labelsTr" / f"case{i}.nii.gz"
        )
    write_dataset_json(
        root,
        channel_names={0: "CT"},
        labels={"background": 0, "sphere": 1, "cube": 2},
        num_training=3,
        file_ending=".nii.gz",
    )
    return root


SMALL = InteractiveModelConfig(size=32, channels=(4, 8, 16), strides=(2, 2), num_res_units=0)
"""A tiny network configuration that keeps the learned-engine tests fast."""


@pytest.fixture
def small_config() -> InteractiveModelConfig:
    return SMALL


@pytest.fixture
def engine() -> LearnedEngine:
    """A learned engine with seeded, untrained weights of the tiny configuration."""
    torch.manual_seed(0)
    return LearnedEngine(build_network(SMALL), SMALL)
