"""NIfTI, NRRD, MetaImage: round trips, and axis order checked against nibabel and SimpleITK."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.io import Image, read_image, write_image

ITK_SUFFIXES = [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"]
DTYPES = [
    np.int8,
    np.uint8,
    np.int16,
    np.uint16,
    np.int32,
    np.uint32,
    np.int64,
    np.float32,
    np.float64,
]


def _assert_same_geometry(a: Image, b: Image, atol: float) -> None:
    np.testing.assert_allclose(a.spacing, b.spacing, rtol=1e-6, atol=0)
    np.testing.assert_allclose(a.origin, b.origin, rtol=0, atol=atol)
    np.testing.assert_allclose(a.direction, b.direction, rtol=0, atol=atol)


@pytest.mark.parametrize("suffix", ITK_SUFFIXES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_round_trip_array_dtype_geometry(tmp_path: Path, oblique_image: Image, suffix, dtype):
    array = (oblique_image.array * 50).astype(dtype)
    image = oblique_image.with_array(array)
    write_image(image, tmp_path / f"img{suffix}")
    back = read_image(tmp_path / f"img{suffix}")
    assert back.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.array, array)
    # NIfTI stores geometry as float32: ~1e-5 mm at these magnitudes.
    _assert_same_geometry(back, image, atol=1e-5 if suffix.startswith(".nii") else 1e-12)


@pytest.mark.parametrize("suffix", ITK_SUFFIXES)
def test_round_trip_multichannel(tmp_path: Path, oblique_image: Image, suffix):
    rng = np.random.default_rng(0)
    image = oblique_image.with_array(rng.normal(size=(3, 6, 7, 8)).astype(np.float32))
    write_image(image, tmp_path / f"img{suffix}")
    back = read_image(tmp_path / f"img{suffix}")
    np.testing.assert_array_equal(back.array, image.array)
    _assert_same_geometry(back, image, atol=1e-5)


def test_bool_is_written_as_uint8(tmp_path: Path, oblique_image: Image):
    mask = oblique_image.array > 0
    write_image(oblique_image.with_array(mask), tmp_path / "mask.nii.gz")
    back = read_image(tmp_path / "mask.nii.gz")
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, mask.astype(np.uint8))


@pytest.mark.parametrize("suffix", ITK_SUFFIXES)
def test_nan_and_inf_are_kept_not_an_error(tmp_path: Path, oblique_image: Image, suffix):
    """ITK's own NIfTI reader turns NaN/inf into 0; medseg must return them unchanged."""
    array = oblique_image.array.copy()
    array[0, 1, 2, 3] = np.nan
    array[0, 2, 2, 2] = np.inf
    write_image(oblique_image.with_array(array), tmp_path / f"nan{suffix}")
    back = read_image(tmp_path / f"nan{suffix}")
    np.testing.assert_array_equal(back.array, array)  # NaN compares equal here


def test_nifti_scaling_is_applied(tmp_path: Path):
    nib = pytest.importorskip("nibabel")
    stored = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
    nifti = nib.Nifti1Image(stored, np.eye(4))
    nifti.header.set_slope_inter(2.0, -1024.0)
    nib.save(nifti, tmp_path / "scaled.nii.gz")
    back = read_image(tmp_path / "scaled.nii.gz")
    np.testing.assert_allclose(back.array[0], stored.transpose(2, 1, 0) * 2.0 - 1024.0)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_2d_round_trip(tmp_path: Path, suffix):
    image = Image(
        array=np.arange(12, dtype=np.int16).reshape(1, 3, 4),
        spacing=(0.5, 0.25),
        origin=(3.0, -2.0),
        direction=np.array([[0.0, 1.0], [1.0, 0.0]]),
    )
    write_image(image, tmp_path / f"slice{suffix}")
    back = read_image(tmp_path / f"slice{suffix}")
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, image.array)
    _assert_same_geometry(back, image, atol=1e-6)


def _ras_affine(oblique: np.ndarray) -> np.ndarray:
    """A RAS voxel-to-world affine (nibabel convention) with spacing (x, y, z) = (0.7, 0.8, 3)."""
    affine = np.eye(4)
    affine[:3, :3] = oblique @ np.diag([0.7, 0.8, 3.0])
    affine[:3, 3] = (-30.0, 12.5, 44.0)
    return affine


def test_nibabel_ras_affine_becomes_lps_array_order(tmp_path: Path, oblique_direction):
    """A file written by nibabel (RAS, index order i, j, k) reads back in LPS, order (k, j, i)."""
    nib = pytest.importorskip("nibabel")
    data_ijk = np.random.default_rng(1).normal(size=(8, 7, 6)).astype(np.float32)
    affine = _ras_affine(oblique_direction)
    nifti = nib.Nifti1Image(data_ijk, affine)
    nifti.set_qform(affine, code=1)
    nifti.set_sform(affine, code=1)
    nib.save(nifti, tmp_path / "ras.nii.gz")

    image = read_image(tmp_path / "ras.nii.gz")

    np.testing.assert_array_equal(image.array[0], data_ijk.transpose(2, 1, 0))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # RAS -> LPS flips x and y
    spacing_xyz = np.linalg.norm(lps[:3, :3], axis=0)
    np.testing.assert_allclose(image.spacing, spacing_xyz[::-1], rtol=1e-5)
    np.testing.assert_allclose(image.origin, lps[:3, 3][::-1], atol=1e-4)
    direction_xyz = lps[:3, :3] / spacing_xyz
    np.testing.assert_allclose(image.direction, direction_xyz[::-1, ::-1], atol=1e-5)
    for ijk in [(0, 0, 0), (7, 0, 0), (0, 6, 5), (3, 4, 2)]:
        zyx = np.asarray(image.origin) + image.direction @ (np.asarray(image.spacing) * ijk[::-1])
        world_lps = (lps @ (*ijk, 1.0))[:3]
        np.testing.assert_allclose(zyx[::-1], world_lps, atol=1e-4)


def test_physical_point_matches_simpleitk(tmp_path: Path, oblique_image: Image):
    """origin + direction @ (spacing * idx) equals TransformIndexToPhysicalPoint(idx reversed)."""
    sitk = pytest.importorskip("SimpleITK")
    write_image(oblique_image, tmp_path / "img.mha")
    itk_image = sitk.ReadImage(str(tmp_path / "img.mha"))
    image = read_image(tmp_path / "img.mha")
    np.testing.assert_array_equal(image.array[0], sitk.GetArrayFromImage(itk_image))
    for idx in [(0, 0, 0), (5, 6, 7), (2, 0, 4), (1, 3, 0)]:
        zyx = np.asarray(image.origin) + image.direction @ (np.asarray(image.spacing) * idx)
        expected_xyz = itk_image.TransformIndexToPhysicalPoint([int(i) for i in idx[::-1]])
        np.testing.assert_allclose(zyx[::-1], expected_xyz, atol=1e-9)


def test_detached_headers_point_at_their_data(tmp_path: Path, oblique_image: Image):
    """The atomic write must not leave a temporary file name inside .mhd/.nhdr headers."""
    write_image(oblique_image, tmp_path / "a.mhd")
    write_image(oblique_image, tmp_path / "b.nhdr")
    assert "ElementDataFile = a.zraw" in (tmp_path / "a.mhd").read_text()
    assert "data file: b.raw.gz" in (tmp_path / "b.nhdr").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mhd", "a.zraw", "b.nhdr", "b.raw.gz"]
