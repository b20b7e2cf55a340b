"""DICOM-SEG: a label map written against a synthetic CT series reads back voxel for voxel."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ImageReadError, ImageWriteError
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


def test_seg_of_labelled_slices_only_is_placed_back_on_the_series_grid(
    tmp_path, rng, ct_series_writer, oblique_direction
):
    from medseg.io import place_on_grid

    series = tmp_path / "ct"
    series.mkdir()
    _ct_series(series, ct_series_writer, rng, oblique_direction)
    ct = read_image(series)
    labels = ct.with_array(_labels(ct.spatial_shape)[None])
    labels.array[:, 1] = 0  # labelled slices 2..5 only
    out = write_dicom_seg(
        labels, series, {1: "a", 2: "b"}, tmp_path / "seg.dcm", omit_empty_frames=True
    )

    slab = read_image(out)
    assert slab.spatial_shape == (4, 9, 11)  # slices 2..5: the frames the SEG stores
    placed = place_on_grid(slab, ct)
    np.testing.assert_array_equal(placed.array, labels.array)
    assert placed.same_geometry(ct)


def test_place_on_grid_refuses_a_map_off_the_grid():
    from medseg.errors import GeometryError
    from medseg.io import Image, place_on_grid

    reference = Image.from_array(np.zeros((1, 6, 8, 8)), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    slab = np.ones((1, 2, 8, 8), np.uint8)
    half = Image.from_array(slab, (2.0, 1.0, 1.0), (1.0, 0.0, 0.0))  # between two slices
    with pytest.raises(GeometryError, match="between the image's voxels"):
        place_on_grid(half, reference)
    beyond = Image.from_array(slab, (2.0, 1.0, 1.0), (10.0, 0.0, 0.0))  # slices 5 and 6 of 0..5
    with pytest.raises(GeometryError, match="outside the image's"):
        place_on_grid(beyond, reference)
    coarse = Image.from_array(slab, (2.0, 2.0, 1.0), (0.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match=r"differ: spacing \(2, 2, 1\) vs \(2, 1, 1\) mm"):
        place_on_grid(coarse, reference)
    inside = place_on_grid(Image.from_array(slab, (2.0, 1.0, 1.0), (4.0, 0.0, 0.0)), reference)
    assert inside.array[0, :, 0, 0].tolist() == [0, 0, 1, 1, 0, 0]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools' dciodvfy not installed")
def test_seg_passes_the_dicom3tools_iod_validator(tmp_path, rng, ct_series_writer):
    """dciodvfy (David Clunie's DICOM validator) finds no error in the Segmentation IOD."""
    series = tmp_path / "ct"
    series.mkdir()
    _ct_series(series, ct_series_writer, rng, np.eye(3))
    ct = read_image(series)
    for omit in (False, True):
        out = write_dicom_seg(
            ct.with_array(_labels(ct.spatial_shape)[None]),
            series,
            {1: "liver", 2: "tumour"},
            tmp_path / f"seg_{omit}.dcm",
            omit_empty_frames=omit,
        )
        run = subprocess.run(["dciodvfy", str(out)], capture_output=True, text=True, check=False)
        report = run.stdout + run.stderr
        assert "Segmentation" in report, report
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, errors


def test_segments_are_coded_in_snomed_ct_from_their_names(tmp_path, rng, ct_series_writer):
    import pydicom

    series = tmp_path / "ct"
    series.mkdir()
    _ct_series(series, ct_series_writer, rng, np.eye(3))
    ct = read_image(series)
    labels = ct.with_array(_labels(ct.spatial_shape)[None])
    out = write_dicom_seg(labels, series, {1: "Liver", 2: "tumour"}, tmp_path / "seg.dcm")
    liver, tumour = pydicom.dcmread(out).SegmentSequence
    category = liver.SegmentedPropertyCategoryCodeSequence[0]
    kind = liver.SegmentedPropertyTypeCodeSequence[0]
    assert (category.CodeValue, kind.CodeValue, kind.CodingSchemeDesignator) == (
        "91723000",  # anatomical structure
        "10200004",  # liver
        "SCT",
    )
    category = tumour.SegmentedPropertyCategoryCodeSequence[0]
    assert category.CodeMeaning == "Morphologically Abnormal Structure"
    assert tumour.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"  # neoplasm


@pytest.mark.parametrize(
    ("name", "category", "kind"),
    [
        ("white_matter", "Anatomical Structure", "White Matter"),
        ("grey_matter", "Anatomical Structure", "Gray Matter"),
        ("kidney_left", "Anatomical Structure", "Kidney"),
        ("lung_nodule", "Morphologically Abnormal Structure", "Nodule"),
        ("wm_lesion", "Morphologically Abnormal Structure", "Lesion"),
        ("label_3", "Tissue", "Tissue"),
    ],
)
def test_segment_codes_from_names(name, category, kind):
    from medseg.io.dicom_codes import segment_codes

    found = segment_codes(name)
    assert (found[0].meaning, found[1].meaning) == (category, kind)


def _overlapping_seg(series: Path, target: Path) -> np.ndarray:
    """A SEG (written with highdicom itself) whose tumour segment lies inside the liver segment."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(p) for p in series.iterdir()]
    for ds in sources:
        ds.PatientBirthDate = ds.PatientSex = ds.StudyDate = ds.StudyTime = ""
        ds.StudyID = ds.AccessionNumber = ds.ReferringPhysicianName = ""
    sources.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))  # axial: z is the normal
    masks = np.zeros((len(sources), 9, 11, 2), bool)
    masks[1:5, 1:7, 1:9, 0] = True  # liver
    masks[2:4, 3:5, 3:5, 1] = True  # tumour, inside the liver
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test", version="1", family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=k + 1,
            segment_label=name,
            segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type="AUTOMATIC",
            algorithm_identification=algorithm,
        )
        for k, name in enumerate(["liver", "tumour"])
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segmentation_type="BINARY",
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(target)
    return np.where(masks[..., 1], 2, np.where(masks[..., 0], 1, 0))


def test_overlapping_segments_refused_or_highest_kept(tmp_path, rng, ct_series_writer):
    from medseg.io import place_on_grid
    from medseg.io.dicom_seg import is_dicom_seg

    series = tmp_path / "ct"
    series.mkdir()
    _ct_series(series, ct_series_writer, rng, np.eye(3))
    expected = _overlapping_seg(series, tmp_path / "overlap.dcm")
    with pytest.raises(ImageReadError, match=r"cannot be read as one label map.*overlap"):
        read_image(tmp_path / "overlap.dcm")
    labels = read_dicom_seg(tmp_path / "overlap.dcm", overlaps="highest")
    assert labels.spatial_shape == (4, 9, 11)  # highdicom stores only the labelled slices 1..4
    np.testing.assert_array_equal(place_on_grid(labels, read_image(series)).array[0], expected)
    assert labels.meta["segments_overlap"] is True
    assert is_dicom_seg(tmp_path / "overlap.dcm")
    assert not is_dicom_seg(next(series.iterdir()))  # a CT slice
    assert not is_dicom_seg(tmp_path / "missing.dcm")
