"""read_image / write_image: every error path names the file; writes are atomic."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ImageReadError, ImageWriteError
from medseg.io import Image, read_image, write_image


@pytest.fixture
def nifti_gz(tmp_path: Path) -> Path:
    path = tmp_path / "ok.nii.gz"
    write_image(Image.from_array(np.ones((1, 20, 20, 20), np.float32)), path)
    return path


def test_missing_file(tmp_path: Path):
    path = tmp_path / "absent.nii.gz"
    with pytest.raises(ImageReadError, match="file not found") as info:
        read_image(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".tif", ".jpg"])
def test_empty_file(tmp_path: Path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.touch()
    with pytest.raises(ImageReadError, match=r"empty \(0 bytes\)") as info:
        read_image(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".tif", ".jpg"])
def test_text_file_with_image_suffix(tmp_path: Path, suffix):
    path = tmp_path / f"notes{suffix}"
    path.write_text("patient list\nnot an image\n")
    with pytest.raises(ImageReadError, match="not a readable") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_truncated_nii_gz(nifti_gz: Path):
    data = nifti_gz.read_bytes()
    nifti_gz.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="corrupt or cut short") as info:
        read_image(nifti_gz)
    assert str(nifti_gz) in str(info.value)


def test_truncated_nii(tmp_path: Path, nifti_gz: Path):
    path = tmp_path / "cut.nii"
    data = gzip.decompress(nifti_gz.read_bytes())
    path.write_bytes(data[: len(data) - 100])
    expected = f"truncated: header declares {len(data)} bytes, file holds {len(data) - 100}"
    with pytest.raises(ImageReadError, match=expected):
        read_image(path)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd", ".nhdr", ".png", ".tif"])
def test_truncated_other_formats(tmp_path: Path, suffix):
    rng = np.random.default_rng(3)
    shape = (1, 40, 40) if suffix in (".png", ".tif") else (1, 20, 20, 20)
    path = tmp_path / f"img{suffix}"
    write_image(Image.from_array(rng.integers(0, 60000, shape).astype(np.uint16)), path)
    data_file = max(tmp_path.iterdir(), key=lambda p: p.stat().st_size)  # .zraw / .raw.gz
    data = data_file.read_bytes()
    data_file.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_multi_member_gzip_is_accepted(tmp_path: Path, nifti_gz: Path):
    """Valid .nii.gz made of two gzip members: the trailer check must fall back to counting."""
    data = gzip.decompress(nifti_gz.read_bytes())
    path = tmp_path / "members.nii.gz"
    path.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))
    np.testing.assert_array_equal(read_image(path).array, read_image(nifti_gz).array)


@pytest.mark.parametrize("version", [1, 2])
def test_absurd_nifti_header_is_refused_before_reading(tmp_path: Path, version):
    """A 348/540-byte header claiming ~1e13-1e15 voxels, followed by 64 bytes of data."""
    nib = pytest.importorskip("nibabel")
    header = nib.Nifti1Header() if version == 1 else nib.Nifti2Header()
    side = 30000 if version == 1 else 100000  # NIfTI-1 dims are int16
    header.set_data_shape((side, side, side))
    header.set_data_dtype(np.float32)
    header.set_data_offset(len(header.binaryblock) + 4)
    path = tmp_path / "huge.nii"
    path.write_bytes(header.binaryblock + b"\0" * 4 + b"\0" * 64)
    with pytest.raises(ImageReadError, match="voxels, more than the limit") as info:
        read_image(path)
    assert str(path) in str(info.value)
    gz = tmp_path / "huge.nii.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(ImageReadError, match="voxels, more than the limit"):
        read_image(gz)


def test_absurd_nrrd_header_is_refused(tmp_path: Path):
    path = tmp_path / "huge.nrrd"
    path.write_bytes(
        b"NRRD0004\ntype: float\ndimension: 3\nsizes: 100000 100000 100000\n"
        b"encoding: raw\nendian: little\n\n" + b"\0" * 64
    )
    with pytest.raises(ImageReadError, match="voxels, more than the limit"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".mgh", ".mgz"])
def test_absurd_or_truncated_mgh_is_refused_before_reading(tmp_path: Path, suffix):
    """The MGH header is checked before nibabel maps or reads (and allocates) the voxels."""
    import struct

    nib = pytest.importorskip("nibabel")
    nib.save(nib.MGHImage(np.ones((4, 5, 6), np.float32), np.eye(4)), tmp_path / "ok.mgh")
    good = (tmp_path / "ok.mgh").read_bytes()
    assert struct.unpack(">iiii", good[4:20]) == (4, 5, 6, 1)  # the layout the check reads
    opener = gzip.compress if suffix == ".mgz" else bytes
    cases = {
        "huge": (struct.pack(">iii", 30000, 30000, 30000), "voxels, more than the limit"),
        "big": (struct.pack(">iii", 600, 600, 600), "file is truncated: header declares 864000284"),
    }
    for name, (dims, message) in cases.items():
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(opener(good[:4] + dims + good[16:]))
        with pytest.raises(ImageReadError, match=message) as info:
            read_image(path)
        assert str(path) in str(info.value)
        assert "\n" not in str(info.value)
    (tmp_path / f"ok{suffix}").write_bytes(opener(good))
    assert read_image(tmp_path / f"ok{suffix}").array.shape == (1, 6, 5, 4)


def test_nifti2_gets_a_clear_message(tmp_path: Path):
    nib = pytest.importorskip("nibabel")
    nib.save(nib.Nifti2Image(np.ones((4, 5, 6), np.float32), np.eye(4)), tmp_path / "v2.nii.gz")
    with pytest.raises(ImageReadError, match="NIfTI-2 is not supported"):
        read_image(tmp_path / "v2.nii.gz")


def test_4d_nifti_is_refused(tmp_path: Path):
    nib = pytest.importorskip("nibabel")
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 3), np.float32), np.eye(4)), tmp_path / "t.nii.gz")
    with pytest.raises(ImageReadError, match="4D images are not supported"):
        read_image(tmp_path / "t.nii.gz")


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_header_larger_than_file_can_hold(tmp_path: Path, suffix):
    """10^9 voxels (under the voxel limit) declared by a 200-byte file: refused, not allocated."""
    path = tmp_path / f"big{suffix}"
    if suffix == ".nrrd":
        header = b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 1000 1000 1000\nencoding: gzip\n\n"
    else:
        header = (
            b"ObjectType = Image\nNDims = 3\nDimSize = 1000 1000 1000\nElementType = MET_UCHAR\n"
            b"CompressedData = True\nElementDataFile = LOCAL\n"
        )
    path.write_bytes(header + b"\0" * 64)
    with pytest.raises(ImageReadError, match="too few even if compressed"):
        read_image(path)


def test_series_uid_for_a_file_is_refused(nifti_gz: Path):
    with pytest.raises(ImageReadError, match="applies to DICOM folders"):
        read_image(nifti_gz, series_uid="1.2.3")


def test_unsupported_suffix(tmp_path: Path, oblique_image: Image):
    path = tmp_path / "scan.xyz"
    path.write_bytes(b"abc")
    with pytest.raises(ImageReadError, match="unsupported file type"):
        read_image(path)
    with pytest.raises(ImageWriteError, match="cannot write this file type"):
        write_image(oblique_image, tmp_path / "scan.xyz")
    with pytest.raises(ImageWriteError, match="cannot write this file type"):
        write_image(oblique_image, tmp_path / "series.dcm")


@pytest.mark.parametrize("dtype", [np.float16, np.complex64])
def test_unsupported_voxel_type(tmp_path: Path, dtype):
    with pytest.raises(ImageWriteError, match="cannot be stored; cast to float32"):
        write_image(Image.from_array(np.zeros((1, 2, 3, 4), dtype)), tmp_path / "x.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_missing_output_folder(tmp_path: Path, oblique_image: Image):
    path = tmp_path / "absent" / "img.nii.gz"
    with pytest.raises(ImageWriteError, match="does not exist") as info:
        write_image(oblique_image, path)
    assert str(path) in str(info.value)


def test_output_folder_is_a_file(tmp_path: Path, oblique_image: Image):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImageWriteError, match="does not exist"):
        write_image(oblique_image, tmp_path / "file" / "img.nii.gz")


def test_permission_denied_names_the_target(tmp_path: Path, oblique_image: Image, monkeypatch):
    """What a read-only folder gives a non-root user (root, as in CI containers, may write)."""

    def denied(**_: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("medseg.io.readers.tempfile.mkdtemp", denied)
    with pytest.raises(ImageWriteError, match=r"not writable \(Permission denied\)") as info:
        write_image(oblique_image, tmp_path / "img.nii.gz")
    assert str(tmp_path / "img.nii.gz") in str(info.value)


def test_write_is_atomic_and_leaves_no_temporary(tmp_path: Path, oblique_image: Image):
    path = tmp_path / "img.nii.gz"
    write_image(oblique_image, path)
    first = path.read_bytes()
    with pytest.raises(ImageWriteError, match="holds 2D images") as info:
        write_image(oblique_image, tmp_path / "img.png")  # 3D image: refused, nothing written
    assert str(tmp_path / "img.png") + ":" in str(info.value)  # the target, not a temporary
    write_image(oblique_image.with_array(oblique_image.array * 2), path)
    assert path.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii.gz"]
    assert gzip.decompress(path.read_bytes())[344:348] == b"n+1\0"  # real .nii.gz, not plain .nii
