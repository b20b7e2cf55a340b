"""describe_image and orientation_code, checked against nibabel's axis codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.io import Image, write_image
from medseg.io.describe import describe_image, orientation_code


@pytest.mark.parametrize(
    "affine_columns",
    [np.eye(3), np.diag([-1.0, 1.0, -1.0]), np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])],
    ids=["RAS", "LAI", "permuted"],
)
def test_orientation_code_matches_nibabel(tmp_path: Path, affine_columns):
    nib = pytest.importorskip("nibabel")
    from medseg.io import read_image

    affine = np.eye(4)
    affine[:3, :3] = affine_columns @ np.diag([2.0, 1.0, 0.5])
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), affine), tmp_path / "o.nii.gz")
    expected = "".join(nib.aff2axcodes(affine))
    assert orientation_code(read_image(tmp_path / "o.nii.gz")) == expected


def test_describe_nifti_ignores_nan(tmp_path: Path, oblique_image: Image):
    array = oblique_image.array.copy()
    array[0, 0, 0, 0] = np.nan
    write_image(oblique_image.with_array(array), tmp_path / "img.nii.gz")
    description = describe_image(tmp_path / "img.nii.gz")
    assert description.shape == (6, 7, 8)
    assert description.channels == 1
    np.testing.assert_allclose(description.spacing, (3.0, 0.8, 0.7), rtol=1e-6)
    assert description.minimum == pytest.approx(float(np.nanmin(array)))
    assert description.maximum == pytest.approx(float(np.nanmax(array)))
    assert description.nonfinite == 1


def test_describe_all_nan_and_2d(tmp_path: Path):
    write_image(Image.from_array(np.full((1, 3, 4), np.nan, np.float32)), tmp_path / "nan.tif")
    description = describe_image(tmp_path / "nan.tif")
    assert description.orientation == "2D"
    assert np.isnan(description.minimum)
    assert np.isnan(description.maximum)
    assert description.nonfinite == 12
