"""Fixtures for medseg.scale: a tiny random-weight model folder and small images on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scale_fixtures import SPACING, ellipsoid, scale_plan, write_model

from medseg.io import Image, write_image


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A one-fold 3D model folder, shared by a test module."""
    return write_model(tmp_path_factory.mktemp("scale") / "model", scale_plan())


@pytest.fixture
def write_cases():  # type: ignore[no-untyped-def]
    """``write_cases(folder, n, shape=(10, 24, 20))``: n NIfTI ellipsoids ``case{i}.nii.gz``."""

    def write(folder: Path, n: int, shape: tuple[int, ...] = (10, 24, 20)) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            path = folder / f"case{i}.nii.gz"
            write_image(Image.from_array(ellipsoid(shape, seed=i)[None], SPACING), path)
            paths.append(path)
        return paths

    return write


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: one thread avoids waiting for a descheduled second one on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
