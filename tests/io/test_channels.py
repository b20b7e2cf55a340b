"""read_channels and find_channel_files: nnU-Net multi-channel naming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.errors import DatasetError, GeometryError, ImageReadError
from medseg.io import Image, find_channel_files, read_channels, write_image


@pytest.fixture
def case_folder(tmp_path: Path, oblique_image: Image) -> Path:
    """case_0000 (float32) and case_0001 (int16) on one grid, plus distractor files."""
    write_image(oblique_image, tmp_path / "case_0000.nii.gz")
    write_image(
        oblique_image.with_array(np.arange(336, dtype=np.int16).reshape(1, 6, 7, 8)),
        tmp_path / "case_0001.nii.gz",
    )
    write_image(oblique_image, tmp_path / "case_1_0000.nii.gz")  # another case
    write_image(oblique_image, tmp_path / "case_0002.nrrd")  # other file ending
    return tmp_path


def test_find_channel_files_exact_case_and_order(case_folder: Path):
    files = find_channel_files(case_folder, "case", ".nii.gz")
    assert [f.name for f in files] == ["case_0000.nii.gz", "case_0001.nii.gz"]
    assert [f.name for f in find_channel_files(case_folder, "case_1", ".nii.gz")] == [
        "case_1_0000.nii.gz"
    ]


def test_read_channels_stacks_in_order(case_folder: Path, oblique_image: Image):
    image = read_channels(find_channel_files(case_folder, "case", ".nii.gz"))
    assert image.array.shape == (2, 6, 7, 8)
    assert image.array.dtype == np.float32  # common type of float32 and int16
    np.testing.assert_array_equal(image.array[0], oblique_image.array[0])
    np.testing.assert_array_equal(image.array[1], np.arange(336).reshape(6, 7, 8))
    assert not image.same_geometry(Image.from_array(image.array))
    assert image.same_geometry(oblique_image, atol=1e-4)
    assert len(image.meta["channel_files"]) == 2


def test_read_channels_geometry_mismatch_names_file(case_folder: Path, oblique_image: Image):
    shifted = Image(
        array=oblique_image.array,
        spacing=oblique_image.spacing,
        origin=(0.0, 0.0, 0.0),
        direction=oblique_image.direction,
    )
    write_image(shifted, case_folder / "case_0001.nii.gz")
    with pytest.raises(GeometryError, match=r"case_0001\.nii\.gz: geometry differs.*origin"):
        read_channels(find_channel_files(case_folder, "case", ".nii.gz"))


def test_read_channels_shape_mismatch(case_folder: Path):
    write_image(
        Image.from_array(np.zeros((1, 3, 3, 3), np.float32)), case_folder / "case_0001.nii.gz"
    )
    with pytest.raises(GeometryError, match="shape"):
        read_channels(find_channel_files(case_folder, "case", ".nii.gz"))


def test_read_channels_rgb_png_and_grey(tmp_path: Path):
    write_image(Image.from_array(np.full((3, 4, 5), 7, np.uint8)), tmp_path / "c_0000.png")
    write_image(Image.from_array(np.full((1, 4, 5), 9, np.uint8)), tmp_path / "c_0001.png")
    image = read_channels(find_channel_files(tmp_path, "c", ".png"))
    assert image.array.shape == (4, 4, 5)
    assert image.array[:, 0, 0].tolist() == [7, 7, 7, 9]


def test_read_channels_errors(tmp_path: Path):
    with pytest.raises(ImageReadError, match="no channel files"):
        read_channels([])
    with pytest.raises(ImageReadError, match="file not found"):
        read_channels([tmp_path / "x_0000.nii.gz"])


def test_find_channel_files_errors(tmp_path: Path):
    with pytest.raises(ImageReadError, match="folder not found"):
        find_channel_files(tmp_path / "absent", "case", ".nii.gz")
    with pytest.raises(DatasetError, match="no channel files for case 'case'"):
        find_channel_files(tmp_path, "case", ".nii.gz")
    (tmp_path / "case_0000.nii.gz").touch()
    (tmp_path / "case_0002.nii.gz").touch()
    with pytest.raises(DatasetError, match=r"lacks channel file\(s\) case_0001\.nii\.gz"):
        find_channel_files(tmp_path, "case", ".nii.gz")
