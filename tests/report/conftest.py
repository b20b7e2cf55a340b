"""Fixtures of the report tests."""

from __future__ import annotations

import pytest
from report_shapes import rotation


@pytest.fixture
def oblique_geometry():
    """Anisotropic spacing (z, y, x) and an oblique (but still mostly axial) direction."""
    return {
        "spacing": (2.5, 0.7, 1.1),
        "origin": (-40.0, 25.0, -60.0),
        "direction": rotation(20.0, 12.0, -8.0),
    }
