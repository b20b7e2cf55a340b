"""DICOM series: the test writes real CT series with pydicom and checks HU, order and geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ImageReadError
from medseg.io import read_image


def _hu_volume(rng: np.random.Generator) -> np.ndarray:
    """(5, 6, 7) HU volume, distinct slices; values 2k - 1024 survive slope 2, intercept -1024."""
    stored = rng.integers(0, 1500, size=(5, 6, 7))
    stored[:, 0, 0] = np.arange(5) * 100  # z order visible in one voxel
    return 2 * stored - 1024


def _write_axial(writer, folder: Path, volume: np.ndarray, rng) -> str:
    """An axial series at the origin: 1 mm pixels, 2 mm slices; returns its series UID."""
    return writer(
        folder,
        volume,
        pixel_spacing=(1.0, 1.0),
        slice_spacing=2.0,
        origin_xyz=(0.0, 0.0, 0.0),
        row_cosine=np.array([1.0, 0.0, 0.0]),
        column_cosine=np.array([0.0, 1.0, 0.0]),
        rng=rng,
    )


@pytest.mark.parametrize("oblique", [False, True], ids=["axial", "oblique"])
def test_ct_series_hu_order_and_geometry(
    tmp_path, rng, oblique_direction, ct_series_writer, oblique: bool
):
    hu = _hu_volume(rng)
    rotation = oblique_direction if oblique else np.eye(3)
    row, column = rotation[:, 0], rotation[:, 1]  # (x, y, z) LPS unit vectors
    origin_xyz = (-120.5, 33.25, 410.0)
    ct_series_writer(
        tmp_path,
        hu,
        pixel_spacing=(0.8, 0.7),
        slice_spacing=3.0,
        origin_xyz=origin_xyz,
        row_cosine=row,
        column_cosine=column,
        rng=rng,
    )
    (tmp_path / "README.txt").write_text("not a DICOM file\n")
    (tmp_path / "notes.dcm").write_bytes(b"\x00" * 300)

    image = read_image(tmp_path)

    assert image.array.shape == (1, 5, 6, 7)
    np.testing.assert_array_equal(image.array[0], hu)
    np.testing.assert_allclose(image.spacing, (3.0, 0.8, 0.7), atol=1e-5)
    np.testing.assert_allclose(image.origin, origin_xyz[::-1], atol=1e-4)
    direction_xyz = np.column_stack([row, column, np.cross(row, column)])
    np.testing.assert_allclose(image.direction, direction_xyz[::-1, ::-1], atol=1e-6)
    assert image.meta["modality"] == "CT"


def test_geometry_matches_each_slice_position(tmp_path, rng, oblique_direction, ct_series_writer):
    """Every slice's ImagePositionPatient equals origin + direction @ (spacing * (k, 0, 0))."""
    import pydicom

    rotation = oblique_direction
    ct_series_writer(
        tmp_path,
        _hu_volume(rng),
        pixel_spacing=(0.8, 0.7),
        slice_spacing=2.5,
        origin_xyz=(1.0, 2.0, 3.0),
        row_cosine=rotation[:, 0],
        column_cosine=rotation[:, 1],
        rng=rng,
    )
    image = read_image(tmp_path)
    positions = {}
    for path in tmp_path.iterdir():
        ds = pydicom.dcmread(path)
        positions[float(ds.PixelData[0] | ds.PixelData[1] << 8)] = [
            float(v) for v in ds.ImagePositionPatient
        ]
    for k in range(image.spatial_shape[0]):
        first_voxel = float(image.array[0, k, 0, 0] + 1024) / 2  # back to the stored value
        expected_xyz = positions[first_voxel]
        zyx = np.asarray(image.origin) + image.direction @ (np.asarray(image.spacing) * (k, 0, 0))
        np.testing.assert_allclose(zyx[::-1], expected_xyz, atol=1e-4)


def test_several_series_need_a_choice(tmp_path, rng, ct_series_writer):
    kwargs = {
        "pixel_spacing": (1.0, 1.0),
        "slice_spacing": 2.0,
        "origin_xyz": (0.0, 0.0, 0.0),
        "row_cosine": np.array([1.0, 0.0, 0.0]),
        "column_cosine": np.array([0.0, 1.0, 0.0]),
        "rng": rng,
    }
    first = _hu_volume(rng)
    uid_a = ct_series_writer(tmp_path, first, **kwargs)
    uid_b = ct_series_writer(tmp_path, _hu_volume(rng)[:3], **kwargs)
    with pytest.raises(ImageReadError, match="2 DICOM series") as info:
        read_image(tmp_path)
    assert uid_a in str(info.value)
    assert uid_b in str(info.value)
    image = read_image(tmp_path, series_uid=uid_a)
    np.testing.assert_array_equal(image.array[0], first)
    with pytest.raises(ImageReadError, match="no DICOM series with"):
        read_image(tmp_path, series_uid="1.2.3")


def test_missing_slice_is_refused(tmp_path, rng, ct_series_writer):
    _write_axial(ct_series_writer, tmp_path, _hu_volume(rng), rng)
    import pydicom

    middle = next(
        p for p in tmp_path.iterdir() if float(pydicom.dcmread(p).ImagePositionPatient[2]) == 4.0
    )
    middle.unlink()
    with pytest.raises(ImageReadError, match="not uniform"):
        read_image(tmp_path)


def test_single_dicom_file_reads_as_one_slice(tmp_path: Path, rng, ct_series_writer):
    hu = np.full((2, 4, 5), -1000)
    hu[:, 1, 2] = (40, 60)
    ct_series_writer(
        tmp_path,
        hu,
        pixel_spacing=(0.8, 0.7),
        slice_spacing=3.0,
        origin_xyz=(1.0, 2.0, 3.0),
        row_cosine=np.array([1.0, 0.0, 0.0]),
        column_cosine=np.array([0.0, 1.0, 0.0]),
        rng=rng,
    )
    for path in tmp_path.iterdir():
        image = read_image(path)
        assert image.array.shape == (1, 1, 4, 5)
        z = image.origin[0]
        assert z in (3.0, 6.0)
        assert image.array[0, 0, 1, 2] == (40 if z == 3.0 else 60)
        assert image.spacing[1:] == pytest.approx((0.8, 0.7))
        assert image.origin[1:] == pytest.approx((2.0, 1.0))


def test_mixed_orientation_is_refused(tmp_path: Path, rng, ct_series_writer):
    import pydicom

    uid = _write_axial(ct_series_writer, tmp_path, _hu_volume(rng), rng)
    path = sorted(tmp_path.iterdir())[0]
    ds = pydicom.dcmread(path)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a coronal slice in an axial series
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="one series, one orientation"):
        read_image(tmp_path, series_uid=uid)


def test_degenerate_orientation_is_refused(tmp_path: Path, rng, ct_series_writer):
    import pydicom

    _write_axial(ct_series_writer, tmp_path, _hu_volume(rng), rng)
    for path in tmp_path.iterdir():
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [1, 0, 0, 1, 0, 0]
        ds.save_as(path)
    with pytest.raises(ImageReadError, match="degenerate ImageOrientationPatient"):
        read_image(tmp_path)


def test_dicom_without_geometry_is_ignored(tmp_path: Path, rng, ct_series_writer):
    import pydicom

    hu = _hu_volume(rng)
    _write_axial(ct_series_writer, tmp_path, hu, rng)
    report = pydicom.dcmread(sorted(tmp_path.iterdir())[0])
    del report.ImagePositionPatient, report.PixelData
    report.SeriesInstanceUID = "1.2.3.4"
    report.save_as(tmp_path / "report.dcm")
    np.testing.assert_array_equal(read_image(tmp_path).array[0], hu)


def test_per_slice_rescale_is_applied_exactly(tmp_path: Path, rng, ct_series_writer):
    """ITK's series reader would truncate 10 * 0.25 to 2 (pixel type from the first slice)."""
    import pydicom

    ct_series_writer(
        tmp_path,
        np.full((3, 4, 5), 10.0),
        pixel_spacing=(1.0, 1.0),
        slice_spacing=2.0,
        origin_xyz=(0.0, 0.0, 0.0),
        row_cosine=np.array([1.0, 0.0, 0.0]),
        column_cosine=np.array([0.0, 1.0, 0.0]),
        rng=rng,
        slope=1.0,
        intercept=0.0,
    )
    for path in tmp_path.iterdir():
        ds = pydicom.dcmread(path)
        ds.RescaleSlope = {0.0: "1", 2.0: "0.25", 4.0: "3"}[float(ds.ImagePositionPatient[2])]
        ds.save_as(path)
    image = read_image(tmp_path)
    np.testing.assert_array_equal(image.array[0, :, 1, 1], [10.0, 2.5, 30.0])


def test_folder_without_dicom(tmp_path: Path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(ImageReadError, match="no DICOM image series"):
        read_image(tmp_path)
