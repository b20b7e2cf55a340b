"""Single DICOM files: values as pydicom decodes them, geometry from the tags, clear refusals."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ImageReadError
from medseg.io import read_image, write_image

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402 - after the importorskip


def _shipped(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom does not ship {name}")
    return Path(path)


def test_big_endian_dose_equals_its_little_endian_twin():
    big = read_image(_shipped("rtdose_expb.dcm"))
    little = read_image(_shipped("rtdose.dcm"))
    np.testing.assert_array_equal(big.array, little.array)
    assert big.array.dtype.isnative
    ds = pydicom.dcmread(_shipped("rtdose.dcm"))
    dose_gy = ds.pixel_array[0, 0, 0] * float(ds.DoseGridScaling)  # 1249000 x 1e-6 Gy
    assert big.array[0, 0, 0, 0] == pytest.approx(dose_gy, rel=1e-6)
    assert big.spatial_shape == (15, 10, 10)
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    assert big.spacing[0] == pytest.approx(abs(offsets[1] - offsets[0]))


@pytest.mark.parametrize("name", ["SC_rgb_rle_16bit.dcm", "SC_rgb_rle_32bit.dcm"])
def test_rle_multibyte_rgb_keeps_channel_order(name: str):
    image = read_image(_shipped(name))
    full = np.iinfo(image.array.dtype).max
    assert tuple(image.array[:, 0, 5, 50]) == (full, 0, 0)  # the top band is pure red
    np.testing.assert_array_equal(
        image.array[:, 0], np.moveaxis(pydicom.dcmread(_shipped(name)).pixel_array, -1, 0)
    )


def test_one_bit_segmentation_reads_as_segment_numbers():
    image = read_image(_shipped("liver_1frame.dcm"))
    assert set(np.unique(image.array)) == {0, 1}
    expected = pydicom.dcmread(_shipped("liver_1frame.dcm")).pixel_array
    np.testing.assert_array_equal(image.array[0, 0], expected)
    assert image.meta["segment_labels"]
    np.testing.assert_array_equal(read_image(_shipped("liver_expb_1frame.dcm")).array, image.array)


def _write_single(path: Path, stored: np.ndarray, **tags) -> None:
    """A single-frame uint16 DICOM file with the given tags (no preamble check on the name)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        SecondaryCaptureImageStorage,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality = "OT"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_monochrome1_is_rescaled_and_not_inverted(tmp_path):
    stored = np.arange(12, dtype=np.uint16).reshape(3, 4) * 100
    _write_single(
        tmp_path / "cr.dcm",
        stored,
        PhotometricInterpretation="MONOCHROME1",
        RescaleSlope="0.5",
        RescaleIntercept="-10",
    )
    image = read_image(tmp_path / "cr.dcm")
    np.testing.assert_allclose(image.array[0, 0], stored * 0.5 - 10)
    assert image.meta["photometric_interpretation"] == "MONOCHROME1"


def test_single_slice_geometry_from_tags(tmp_path, oblique_direction):
    stored = np.arange(20, dtype=np.uint16).reshape(4, 5)
    row, column = oblique_direction[:, 0], oblique_direction[:, 1]
    _write_single(
        tmp_path / "slice.dcm",
        stored,
        ImagePositionPatient=["-40", "10", "20"],
        ImageOrientationPatient=[f"{v:.8f}" for v in (*row, *column)],
        PixelSpacing=["0.7", "0.6"],
        SliceThickness="2.5",
        RescaleSlope="1",
        RescaleIntercept="-1024",
    )
    image = read_image(tmp_path / "slice.dcm")
    assert image.array.shape == (1, 1, 4, 5)
    assert image.array.dtype == np.int16  # whole-number rescale keeps an integer type
    np.testing.assert_array_equal(image.array[0, 0], stored.astype(int) - 1024)
    assert image.spacing == pytest.approx((2.5, 0.7, 0.6))
    assert image.origin == pytest.approx((20.0, 10.0, -40.0))
    # column j of direction is array axis j in (z, y, x) components: x axis = row cosine
    np.testing.assert_allclose(image.direction[:, 2], row[::-1], atol=1e-7)
    np.testing.assert_allclose(image.direction[:, 1], column[::-1], atol=1e-7)


@pytest.mark.parametrize("oblique", [False, True], ids=["axial", "oblique"])
def test_multichannel_single_slice_survives_every_writer(tmp_path, oblique_direction, oblique):
    """(3, 1, Y, X) with z spacing 2.5 and origin (-40, 10, 20) keeps all three axes."""
    image = read_image(_shipped("SC_rgb_rle.dcm"))
    from medseg.io import Image

    image = Image(
        array=image.array,
        spacing=(2.5, 0.7, 0.7),
        origin=(-40.0, 10.0, 20.0),
        direction=oblique_direction if oblique else np.eye(3),
    )
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        write_image(image, tmp_path / f"rgb{suffix}")
        back = read_image(tmp_path / f"rgb{suffix}")
        assert back.array.shape == (3, 1, *image.spatial_shape[1:]), suffix
        np.testing.assert_array_equal(back.array, image.array)
        assert back.same_geometry(image, atol=1e-5), (suffix, back.spacing, back.origin)
    import nibabel as nib

    assert nib.load(tmp_path / "rgb.nii.gz").header.get_zooms()[2] == pytest.approx(2.5)


def test_two_dimensional_rgb_nifti_stays_two_dimensional(tmp_path):
    from medseg.io import Image

    image = Image.from_array(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    write_image(image, tmp_path / "rgb2d.nii.gz")
    assert read_image(tmp_path / "rgb2d.nii.gz").array.shape == (3, 4, 5)


def test_dicom_without_suffix_and_gzipped(tmp_path):
    source = _shipped("CT_small.dcm")
    expected = read_image(source)
    shutil.copy(source, tmp_path / "IM0001")
    with gzip.open(tmp_path / "ct.dcm.gz", "wb") as out:
        out.write(source.read_bytes())
    for path in (tmp_path / "IM0001", tmp_path / "ct.dcm.gz"):
        image = read_image(path)
        np.testing.assert_array_equal(image.array, expected.array)
        assert image.same_geometry(expected)


def test_truncated_header_is_refused_before_decoding(tmp_path):
    stored = np.zeros((4, 5), np.uint16)
    _write_single(tmp_path / "short.dcm", stored)
    ds = pydicom.dcmread(tmp_path / "short.dcm")
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4000, 5000, 20  # 400 M values declared
    ds.save_as(tmp_path / "short.dcm")
    with pytest.raises(ImageReadError, match=r"short\.dcm: pixel data holds 40 bytes"):
        read_image(tmp_path / "short.dcm")
    ds.Rows, ds.Columns, ds.NumberOfFrames = 60000, 60000, 10
    ds.save_as(tmp_path / "short.dcm")
    with pytest.raises(ImageReadError, match="more than the limit"):
        read_image(tmp_path / "short.dcm")


def test_missing_decoder_is_named(monkeypatch):
    from pydicom.pixels.decoders.base import Decoder

    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    with pytest.raises(ImageReadError, match=r"JPEG2000\.dcm: .*pip install pylibjpeg"):
        read_image(_shipped("JPEG2000.dcm"))


def test_non_images_and_mosaics_are_refused_with_the_reason():
    with pytest.raises(ImageReadError, match=r"rtplan\.dcm: DICOM file holds no pixel data"):
        read_image(_shipped("rtplan.dcm"))
    nibabel = pytest.importorskip("nibabel")
    mosaic = Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / "0.dcm"
    if mosaic.exists():
        with pytest.raises(ImageReadError, match="Siemens mosaic"):
            read_image(mosaic)


def test_cifti_and_sheared_nifti_are_named(tmp_path):
    nib = pytest.importorskip("nibabel")
    cifti = Path(nib.__file__).parent / "tests" / "data" / "row_major.dconn.nii"
    if cifti.exists():
        with pytest.raises(ImageReadError, match="Cifti2 file"):
            read_image(cifti)
    affine = np.eye(4)
    affine[0, 1] = 0.5
    sheared = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), affine)
    sheared.set_qform(None, code=0)
    nib.save(sheared, tmp_path / "sheared.nii.gz")
    with pytest.raises(ImageReadError, match="direction is not orthonormal"):
        read_image(tmp_path / "sheared.nii.gz")


def test_big_endian_nifti_writes_natively(tmp_path):
    nib = pytest.importorskip("nibabel")
    data = np.arange(24, dtype=">i2").reshape(2, 3, 4)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "be.nii")
    image = read_image(tmp_path / "be.nii")
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        write_image(image, tmp_path / f"out{suffix}")
        np.testing.assert_array_equal(read_image(tmp_path / f"out{suffix}").array, image.array)


def test_mgz_reads_with_nibabel_geometry(tmp_path):
    nib = pytest.importorskip("nibabel")
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    affine = np.array([[-1.0, 0, 0, 10], [0, 0, 2.0, -5], [0, -1.5, 0, 7], [0, 0, 0, 1]])
    nib.save(nib.MGHImage(data, affine), tmp_path / "brain.mgz")
    image = read_image(tmp_path / "brain.mgz")
    np.testing.assert_array_equal(image.array[0], data.transpose(2, 1, 0))
    corner = np.array([2, 3, 4])  # nibabel (i, j, k) = array (x, y, z) index
    ras = affine @ np.r_[corner, 1]
    zyx = np.asarray(image.origin) + image.direction @ (image.spacing * corner[::-1])
    np.testing.assert_allclose(zyx[::-1], ras[:3] * [-1, -1, 1], atol=1e-6)


def test_one_slice_vector_nifti_from_nibabel_keeps_its_z_axis(tmp_path):
    nib = pytest.importorskip("nibabel")
    data = np.arange(60, dtype=np.uint8).reshape(5, 4, 1, 1, 3)  # (x, y, z, t, component)
    nifti = nib.Nifti1Image(data, np.diag([0.7, 0.7, 2.5, 1.0]))
    nifti.header.set_intent("vector")
    nib.save(nifti, tmp_path / "vec.nii.gz")
    image = read_image(tmp_path / "vec.nii.gz")
    assert image.array.shape == (3, 1, 4, 5)
    assert image.spacing == pytest.approx((2.5, 0.7, 0.7))
    np.testing.assert_array_equal(image.array[:, 0], data[:, :, 0, 0, :].transpose(2, 1, 0))
