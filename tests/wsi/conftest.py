"""Small synthetic slides for the medseg.wsi tests (a few thousand pixels, written tile by tile)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tiffslide")

from medseg.wsi.synthetic import SyntheticSlide, SyntheticSlideSpec, write_synthetic_slide

SPEC = SyntheticSlideSpec(shape=(2048, 2560), mpp=0.5, tile=256, seed=3, compression="zlib")


@pytest.fixture(scope="session")
def slide_spec() -> SyntheticSlideSpec:
    return SPEC


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticSlide]:
    """A 2048 x 2560 px pyramidal TIFF at 0.5 µm/px and its renderer (ground truth)."""
    path = tmp_path_factory.mktemp("slides") / "slide.tif"
    return path, write_synthetic_slide(path, SPEC)
