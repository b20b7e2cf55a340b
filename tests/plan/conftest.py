"""Tiny synthetic datasets written as NIfTI files: a "head" (nonzero ellipsoid), a large tissue
label, a second tissue label and small lesion blobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medseg.data.dataset import Case, Dataset, LabelSpec
from medseg.io import Image, write_image

OBLIQUE = np.array(
    [[1.0, 0.0, 0.0], [0.0, np.cos(0.3), -np.sin(0.3)], [0.0, np.sin(0.3), np.cos(0.3)]]
)


def synthetic_case(
    shape: tuple[int, ...], rng: np.random.Generator, *, lesions: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, label uint8) of ``shape``: zero outside an ellipsoid, labels inside."""
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grid))
    head = radius < 0.8
    label = np.zeros(shape, np.uint8)
    label[radius < 0.55] = 1
    label[(radius >= 0.55) & head] = 2
    if lesions:
        centre = tuple(n // 2 + 1 for n in shape)
        label[tuple(slice(c - 1, c + 1) for c in centre)] = 3
    image = np.where(head, 100.0 + 40.0 * label + rng.normal(0, 5, shape), 0.0)
    return image.astype(np.float32), label


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Dataset]:
    """Factory: ``make_dataset(n=3, shape=(16, 20, 18), spacings=None, channels=("T1",))``."""

    def make(
        n: int = 3,
        shape: tuple[int, ...] = (16, 20, 18),
        spacings: list[tuple[float, ...]] | None = None,
        channels: tuple[str, ...] = ("T1",),
        direction: np.ndarray | None = None,
        lesions: bool = True,
        labels: LabelSpec | None = None,
        name: str = "Tiny",
    ) -> Dataset:
        rng = np.random.default_rng(0)
        root = tmp_path / name
        (root / "imagesTr").mkdir(parents=True, exist_ok=True)
        (root / "labelsTr").mkdir(exist_ok=True)
        cases = []
        for i in range(n):
            spacing = spacings[i] if spacings else (1.0,) * len(shape)
            image, label = synthetic_case(shape, rng, lesions=lesions)
            geo = {"spacing": spacing, "origin": (10.0, -5.0, 3.0)[: len(shape)]}
            if direction is not None:
                geo["direction"] = direction
            paths = []
            for c in range(len(channels)):
                path = root / "imagesTr" / f"case{i}_{c:04d}.nii.gz"
                write_image(Image.from_array(image[None] * (c + 1), **geo), path)
                paths.append(path)
            label_path = root / "labelsTr" / f"case{i}.nii.gz"
            write_image(Image.from_array(label[None], **geo), label_path)
            cases.append(Case(case_id=f"case{i}", image_paths=tuple(paths), label_path=label_path))
        spec = labels or LabelSpec(
            labels={"background": 0, "inner": 1, "outer": 2, **({"lesion": 3} if lesions else {})}
        )
        return Dataset(
            root=root,
            name=name,
            cases=tuple(cases),
            labels=spec,
            channel_names=dict(enumerate(channels)),
        )

    return make
