"""Fixtures for medseg.weak (helpers live in ``weak_phantoms``, importable by test modules)."""

from __future__ import annotations

from pathlib import Path

import pytest
from weak_phantoms import write_phantom_dataset


@pytest.fixture
def phantom_dataset(tmp_path: Path) -> Path:
    return write_phantom_dataset(tmp_path / "Dataset001_Phantom")
