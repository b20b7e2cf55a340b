"""Synthetic cases with anisotropic spacing (3.0, 0.8, 0.8) mm and an oblique direction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medseg.data.dataset import Case, Dataset, LabelSpec
from medseg.io import Image, write_image
from medseg.plan import PlanBudget, extract_fingerprint, make_plan
from medseg.plan.plan import Plan

SPACING = (3.0, 0.8, 0.8)
ORIGIN = (12.5, -30.25, 7.0)
_A = 0.4
OBLIQUE = np.array([[np.cos(_A), 0.0, np.sin(_A)], [0.0, 1.0, 0.0], [-np.sin(_A), 0.0, np.cos(_A)]])


def ellipsoid_case(shape=(12, 40, 36), spacing=SPACING, seed=0):
    """Image (nonzero inside a 'head') and labels 1 (ball) and 2 (shell), smooth in mm."""
    rng = np.random.default_rng(seed)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    grid = np.meshgrid(*axes, indexing="ij")
    half = [(n - 1) / 2 * s for n, s in zip(shape, spacing, strict=True)]
    r = np.sqrt(sum((g / (0.85 * h)) ** 2 for g, h in zip(grid, half, strict=True)))
    label = np.zeros(shape, np.uint8)
    label[r < 0.9] = 2
    label[r < 0.5] = 1
    image = np.where(r < 1.0, 50.0 + 30.0 * label + rng.normal(0, 2, shape), 0.0)
    return image.astype(np.float32), label


@pytest.fixture
def make_case() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """The :func:`ellipsoid_case` factory, for tests that need another shape or spacing."""
    return ellipsoid_case


@pytest.fixture
def case_image() -> tuple[Image, np.ndarray]:
    image, label = ellipsoid_case()
    return Image.from_array(image[None], SPACING, ORIGIN, OBLIQUE), label


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Dataset]:
    def make(n: int = 3, shape=(12, 40, 36)) -> Dataset:
        root = tmp_path / "raw"
        root.mkdir(exist_ok=True)
        cases = []
        for i in range(n):
            image, label = ellipsoid_case(shape, seed=i)
            ipath, lpath = root / f"c{i}_0000.nii.gz", root / f"c{i}.nii.gz"
            write_image(Image.from_array(image[None], SPACING, ORIGIN, OBLIQUE), ipath)
            write_image(Image.from_array(label[None], SPACING, ORIGIN, OBLIQUE), lpath)
            cases.append(Case(case_id=f"c{i}", image_paths=(ipath,), label_path=lpath))
        return Dataset(
            root=root,
            name="Aniso",
            cases=tuple(cases),
            labels=LabelSpec(labels={"background": 0, "ball": 1, "shell": 2}),
            channel_names={0: "MR"},
        )

    return make


@pytest.fixture
def plan(make_dataset) -> Plan:
    """A plan resampling to (1.5, 1.2, 1.2) mm, so every axis changes size."""
    fingerprint = extract_fingerprint(make_dataset(n=2), num_samples=10_000)
    return make_plan(
        fingerprint,
        budget=PlanBudget(),
        overrides={"3d.spacing": [1.5, 1.2, 1.2], "2d.spacing": [1.2, 1.2]},
    )
