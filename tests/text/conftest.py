"""Fixtures of tests/text: the synthetic abdomen (text_phantom.py) in each storage variant."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from text_phantom import VARIANTS, canonical_labels

from medseg.io import Image


@pytest.fixture(params=sorted(VARIANTS))
def stored(request: pytest.FixtureRequest) -> tuple[Image, Callable[[np.ndarray], np.ndarray]]:
    """(segmentation Image in one storage variant, function mapping canonical masks to it)."""
    store, direction, spacing, origin = VARIANTS[request.param]
    image = Image(
        array=store(canonical_labels())[None],
        spacing=spacing,
        origin=origin,
        direction=direction,
    )
    return image, store
