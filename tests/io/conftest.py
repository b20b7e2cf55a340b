"""Tiny synthetic images for the medseg.io tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from medseg.io import Image

ANISO_SPACING = (3.0, 0.8, 0.7)  # (z, y, x) mm
ORIGIN = (12.5, -40.25, 7.0)  # (z, y, x) mm


def _oblique_direction() -> np.ndarray:
    return Rotation.from_euler("xyz", [20.0, -12.0, 35.0], degrees=True).as_matrix()


@pytest.fixture
def oblique_direction() -> np.ndarray:
    """A proper rotation (det +1), not axis-aligned, as a 3x3 matrix."""
    return _oblique_direction()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def oblique_image(rng: np.random.Generator) -> Image:
    """(1, 6, 7, 8) float32 volume, anisotropic spacing, oblique direction, off-zero origin."""
    array = rng.normal(size=(1, 6, 7, 8)).astype(np.float32)
    return Image(array=array, spacing=ANISO_SPACING, origin=ORIGIN, direction=_oblique_direction())
