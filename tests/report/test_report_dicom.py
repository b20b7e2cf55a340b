"""A DICOM CT series as the report's image: HU statistics and patient sides from its header."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.io import read_image, write_image
from medseg.report import report_files


def test_ct_series_report_in_hounsfield_units(tmp_path, ct_series_writer):
    hu = np.full((6, 32, 40), -100.0)
    hu[1:5, 4:28, 4:36] = 40.0  # liver-like organ at 40 HU
    series = tmp_path / "series"
    series.mkdir()
    # rows run along -x (towards the patient's right), so array x is mirrored against LPS
    ct_series_writer(
        series,
        hu,
        pixel_spacing=(0.8, 0.7),
        slice_spacing=2.5,
        origin_xyz=(30.0, -20.0, 100.0),
        row_cosine=np.array([-1.0, 0.0, 0.0]),
        column_cosine=np.array([0.0, 1.0, 0.0]),
        rng=np.random.default_rng(0),
    )
    image = read_image(series)
    labels = np.zeros(image.spatial_shape, np.uint8)
    labels[1:5, 4:28, 4:36] = 1
    labels[2:4, 10:14, 30:34] = 2  # high column index = patient right here
    write_image(image.with_array(labels[None]), tmp_path / "seg.nii.gz")
    (tmp_path / "dataset.json").write_text(
        json.dumps({"labels": {"background": 0, "liver": 1, "tumour": 2}})
    )
    report, _ = report_files(
        series,
        tmp_path / "seg.nii.gz",
        tmp_path / "out",
        label_names=tmp_path / "dataset.json",
        formats=("json",),
    )
    liver = report.findings.structures[0]
    assert liver.intensity["CT"].unit == "HU"
    assert liver.intensity["CT"].mean == pytest.approx(40.0, abs=1.0)
    (tumour,) = report.findings.lesions
    assert tumour.side == "right"
    assert tumour.structure == "liver"
    assert report.to_dict()["units"]["intensity"] == "HU"


def _series_with_seg(tmp_path, ct_series_writer, names: dict[int, str]):
    """A CT series and a DICOM-SEG of it that stores only its labelled slices."""
    from medseg.io.dicom_seg import write_dicom_seg

    hu = np.full((8, 24, 28), -100.0)
    series = tmp_path / "series"
    series.mkdir()
    ct_series_writer(
        series,
        hu,
        pixel_spacing=(0.9, 0.9),
        slice_spacing=3.0,
        origin_xyz=(-12.0, -10.0, 50.0),
        row_cosine=np.array([1.0, 0.0, 0.0]),
        column_cosine=np.array([0.0, 1.0, 0.0]),
        rng=np.random.default_rng(1),
    )
    image = read_image(series)
    labels = np.zeros(image.spatial_shape, np.uint8)
    labels[2:7, 3:20, 3:24] = 1  # organ: 5 x 17 x 21 voxels
    labels[3:5, 6:10, 6:10] = 2  # lesion: 2 x 4 x 4 voxels, inside the organ
    seg = write_dicom_seg(
        image.with_array(labels[None]), series, names, tmp_path / "seg.dcm", omit_empty_frames=True
    )
    return series, seg


def test_dicom_seg_as_segmentation_labels_matched_by_name(tmp_path, ct_series_writer):
    pytest.importorskip("highdicom")
    series, seg = _series_with_seg(tmp_path, ct_series_writer, {1: "Liver", 2: "tumour"})
    # the model numbers them the other way round: segment names, not numbers, decide
    (tmp_path / "dataset.json").write_text(
        json.dumps({"labels": {"background": 0, "tumour": 1, "liver": 2}})
    )
    voxel_ml = 0.9 * 0.9 * 3.0 / 1000
    report, _ = report_files(
        series, seg, tmp_path / "out", label_names=tmp_path / "dataset.json", formats=("json",)
    )
    by_name = {s.name: s for s in report.findings.structures}
    assert by_name["liver"].voxels == 5 * 17 * 21 - 2 * 4 * 4
    assert by_name["tumour"].volume_ml == pytest.approx(32 * voxel_ml)
    assert by_name["liver"].bbox_index == ((2, 7), (3, 20), (3, 24))  # on the series grid
    (lesion,) = report.findings.lesions
    assert lesion.structure == "liver"
    import pydicom

    sources = report.to_dict()["sources"]  # the series a PACS knows them by
    assert sources["segmentation_series_uid"] == pydicom.dcmread(seg).SeriesInstanceUID
    first = next(series.iterdir())
    assert sources["image_series_uid"] == pydicom.dcmread(first).SeriesInstanceUID

    alone, _ = report_files(series, seg, tmp_path / "out2", formats=("json",))
    assert [s.name for s in alone.findings.structures] == ["Liver", "tumour"]
    assert alone.findings.structures[1].voxels == 32


def test_dicom_seg_errors_name_the_segment_or_the_grid(tmp_path, ct_series_writer):
    pytest.importorskip("highdicom")
    from medseg.errors import DatasetError, GeometryError
    from medseg.io import Image

    series, seg = _series_with_seg(tmp_path, ct_series_writer, {1: "liver", 2: "polyp"})
    (tmp_path / "dataset.json").write_text(
        json.dumps({"labels": {"background": 0, "liver": 1, "tumour": 2}})
    )
    with pytest.raises(DatasetError, match="segment 2 'polyp' is none of the label names"):
        report_files(series, seg, tmp_path / "o", label_names=tmp_path / "dataset.json")
    image = read_image(series)
    other = Image.from_array(np.zeros((1, 8, 24, 28)), image.spacing, (0.0, 0.0, 0.0))
    write_image(other, tmp_path / "other.nii.gz")
    with pytest.raises(GeometryError, match=r"seg\.dcm \(DICOM Segmentation\) does not lie on"):
        report_files(tmp_path / "other.nii.gz", seg, tmp_path / "o")


def test_dicom_seg_with_overlapping_segments_is_flagged(tmp_path, ct_series_writer):
    pytest.importorskip("highdicom")
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    series, _ = _series_with_seg(tmp_path, ct_series_writer, {1: "liver", 2: "tumour"})
    sources = sorted(
        (pydicom.dcmread(p) for p in series.iterdir()),
        key=lambda ds: float(ds.ImagePositionPatient[2]),
    )
    for ds in sources:
        ds.PatientBirthDate = ds.PatientSex = ds.StudyDate = ds.StudyTime = ""
        ds.StudyID = ds.AccessionNumber = ds.ReferringPhysicianName = ""
    masks = np.zeros((8, 24, 28, 2), bool)
    masks[2:7, 3:20, 3:24, 0] = True  # the liver segment includes the tumour
    masks[3:5, 6:10, 6:10, 1] = True
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test", version="1", family=codes.cid7162.ArtificialIntelligence
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segmentation_type="BINARY",
        segment_descriptions=[
            hd.seg.SegmentDescription(
                segment_number=k + 1,
                segment_label=name,
                segmented_property_category=codes.cid7150.Tissue,
                segmented_property_type=codes.SCT.Tissue,
                algorithm_type="AUTOMATIC",
                algorithm_identification=algorithm,
            )
            for k, name in enumerate(["liver", "tumour"])
        ],
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(tmp_path / "overlap.dcm")

    report, _ = report_files(series, tmp_path / "overlap.dcm", tmp_path / "o", formats=("json",))
    liver, tumour = report.findings.structures
    assert (liver.voxels, tumour.voxels) == (5 * 17 * 21 - 32, 32)
    assert [f.code for f in report.findings.flags] == ["overlapping_segments"]
    assert "Segments overlapped in the DICOM Segmentation" in report.summary
    jsonschema = pytest.importorskip("jsonschema")
    from medseg.report import REPORT_SCHEMA

    jsonschema.validate(report.to_dict(), REPORT_SCHEMA)


def test_report_converts_a_label_map_of_a_series_to_dicom_seg(tmp_path, ct_series_writer):
    pytest.importorskip("highdicom")
    import pydicom
    from typer.testing import CliRunner

    from medseg.cli.main import app_typer
    from medseg.errors import ConfigError

    series, _ = _series_with_seg(tmp_path, ct_series_writer, {1: "liver", 2: "tumour"})
    image = read_image(series)
    labels = np.zeros(image.spatial_shape, np.uint8)
    labels[2:7, 3:20, 3:24] = 1
    labels[3:5, 6:10, 6:10] = 2
    write_image(image.with_array(labels[None]), tmp_path / "pred.nii.gz")
    (tmp_path / "dataset.json").write_text(
        json.dumps({"labels": {"background": 0, "liver": 1, "tumour": 2}})
    )
    args = ["report", str(series), str(tmp_path / "pred.nii.gz"), "-o", str(tmp_path / "out")]
    extra = ["--dataset-json", str(tmp_path / "dataset.json"), "--formats", "json", "--dicom-seg"]
    result = CliRunner().invoke(app_typer, [*args, *extra])
    assert result.exit_code == 0, result.output

    written = tmp_path / "out" / "seg.dcm"
    np.testing.assert_array_equal(read_image(written).array[0], labels)
    ds = pydicom.dcmread(written)
    first = pydicom.dcmread(next(series.iterdir()))
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == first.SeriesInstanceUID
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["liver", "tumour"]

    nifti = tmp_path / "image.nii.gz"
    write_image(image, nifti)
    args = ["report", str(nifti), str(tmp_path / "pred.nii.gz"), "-o", str(tmp_path / "o2")]
    result = CliRunner().invoke(app_typer, [*args, "--dicom-seg"])
    assert isinstance(result.exception, ConfigError)  # the console entry prints it in one line
    assert "give the series folder as IMAGE" in str(result.exception)
    assert not (tmp_path / "o2").exists()
