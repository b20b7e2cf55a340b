"""DICOM-SEG: a label map written against a synthetic CT series reads back voxel for voxel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ImageWriteError
from medseg.io import read_image
from medseg.io.dicom_seg import read_dicom_seg, write_dicom_seg

pytest.importorskip("highdicom")


def _ct_series(folder: Path, writer, rng, direction: np.ndarray) -> str:
    hu = 2 * rng.integers(0, 500, size=(6, 9, 11)) - 1024
    return writer(
        folder,
        hu,
        pixel_spacing=(0.8, 0.7),
        slice_spacing=2.5,
        origin_xyz=(-40.0, 10.5, 120.0),
        row_cosine=direction[:, 0],
        column_cosine=direction[:, 1],
        rng=rng,
    )


def _labels(shape: tuple[int, ...]) -> np.ndarray:
    """Two segments, one of them absent from the first slices; background elsewhere."""
    labels = np.zeros(shape, np.uint8)
    labels[1:4, 2:6, 3:8] = 1
    labels[3:6, 5:8, 1:4] = 2
    return labels


@pytest.mark.parametrize("oblique", [False, True], ids=["axial", "oblique"])
def test_seg_round_trip_keeps_voxels_and_geometry(
    tmp_path, rng, ct_series_writer, oblique_direction, oblique: bool
):
    import pydicom

    series = tmp_path / "ct"
    series.mkdir()
    direction = oblique_direction if oblique else np.eye(3)
    series_uid = _ct_series(series, ct_series_writer, rng, direction)
    ct = read_image(series)
    labels = ct.with_array(_labels(ct.spatial_shape)[None])

    out = write_dicom_seg(labels, series, {1: "liver", 2: "tumour"}, tmp_path / "seg.dcm")

    back = read_image(out)
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.same_geometry(ct, atol=1e-4), (back.spacing, back.origin, ct.spacing, ct.origin)
    assert back.meta["segment_labels"] == {1: "liver", 2: "tumour"}
    assert read_dicom_seg(out).array.shape == (1, 6, 9, 11)
    ds = pydicom.dcmread(out)  # the owner's view: a SEG that references the CT series
    assert ds.Modality == "SEG"
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["liver", "tumour"]
    referenced = {
        i.ReferencedSOPInstanceUID
        for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced == {pydicom.dcmread(p).SOPInstanceUID for p in series.iterdir()}


def test_seg_refuses_labels_that_are_not_1_to_n(tmp_path, rng, ct_series_writer):
    series = tmp_path / "ct"
    series.mkdir()
    _ct_series(series, ct_series_writer, rng, np.eye(3))
    ct = read_image(series)
    labels = ct.with_array(_labels(ct.spatial_shape)[None] * 2)  # values 2 and 4
    with pytest.raises(ImageWriteError, match=r"segment numbers must be 1\.\.N"):
        write_dicom_seg(labels, series, {2: "a", 4: "b"}, tmp_path / "seg.dcm")
    with pytest.raises(ImageWriteError, match=r"label values \[4\] have no name"):
        write_dicom_seg(labels, series, {1: "a", 2: "b"}, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


def test_seg_refuses_labels_on_another_grid(tmp_path, rng, ct_series_writer):
    series = tmp_path / "ct"
    series.mkdir()
    _ct_series(series, ct_series_writer, rng, np.eye(3))
    ct = read_image(series)
    cropped = ct.with_array(_labels(ct.spatial_shape)[None]).array[:, 1:]
    from medseg.io import Image

    moved = Image.from_array(cropped, spacing=ct.spacing, origin=ct.origin, direction=ct.direction)
    with pytest.raises(ImageWriteError, match="differs from the source series"):
        write_dicom_seg(moved, series, {1: "a", 2: "b"}, tmp_path / "seg.dcm")
