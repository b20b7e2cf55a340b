"""Tiny synthetic datasets for the data tests: spheres on a 10 x 12 x 14 grid, oblique direction."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medseg.io import Image, write_image

SPACING = (3.0, 0.8, 0.8)
ORIGIN = (10.0, -20.0, 5.0)
SHAPE = (10, 12, 14)


def oblique_direction() -> np.ndarray:
    angle = np.deg2rad(20)
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def sphere_labels(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """Label map: 1 in a sphere, 2 in a smaller sphere inside it, 0 elsewhere (uint8)."""
    grid = np.indices(shape).astype(float)
    centre = (np.asarray(shape) - 1) / 2
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    labels = np.zeros(shape, np.uint8)
    labels[distance < 4] = 1
    labels[distance < 2] = 2
    return labels


@pytest.fixture
def spheres() -> np.ndarray:
    """The two-sphere label map of :func:`sphere_labels` on the default grid."""
    return sphere_labels()


@pytest.fixture
def write_array() -> Callable[..., Path]:
    """Write a spatial array as a one-channel image with the shared test geometry."""

    def write(path: Path, array: np.ndarray, **geometry: object) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image(
            array=np.asarray(array)[None],
            spacing=geometry.get("spacing", SPACING),
            origin=geometry.get("origin", ORIGIN),
            direction=geometry.get("direction", oblique_direction()),
        )
        write_image(image, path)
        return path

    return write


@pytest.fixture
def make_nnunet(write_array: Callable[..., Path]) -> Callable[..., Path]:
    """Build a clean nnU-Net raw dataset: ``cases`` labelled cases, ``channels`` channels."""

    def make(root: Path, *, cases: int = 3, channels: int = 1, test_cases: int = 0) -> Path:
        rng = np.random.default_rng(0)
        labels = sphere_labels()
        for i in range(cases + test_cases):
            split = "Tr" if i < cases else "Ts"
            for c in range(channels):
                image = rng.normal(100.0 * (c + 1), 10.0, SHAPE).astype(np.float32)
                write_array(root / f"images{split}" / f"case_{i:03d}_{c:04d}.nii.gz", image)
            if split == "Tr":
                write_array(root / "labelsTr" / f"case_{i:03d}.nii.gz", labels)
        meta = {
            "channel_names": {str(c): f"MR{c}" for c in range(channels)},
            "labels": {"background": 0, "outer": 1, "inner": 2},
            "numTraining": cases,
            "file_ending": ".nii.gz",
        }
        (root / "dataset.json").write_text(json.dumps(meta))
        return root

    return make
