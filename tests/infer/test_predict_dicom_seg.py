"""``medseg predict --dicom-seg`` on a DICOM series: a SEG that the owning libraries read back."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.io import read_image, write_image

pytest.importorskip("highdicom")


def test_predict_writes_a_dicom_seg_of_the_series(
    model_factory, make_image, ct_series_writer, tmp_path
):
    import highdicom as hd
    import pydicom

    series = tmp_path / "inputs" / "ct1"
    series.mkdir(parents=True)
    angle = 0.3  # an oblique series: rows tilted in the axial plane
    row = np.array([np.cos(angle), np.sin(angle), 0.0])
    column = np.array([-np.sin(angle), np.cos(angle), 0.0])
    hu = np.clip(make_image(oblique=False).array[0] * 8 - 300, -1000, 2000)
    series_uid = ct_series_writer(
        series,
        hu,
        pixel_spacing=(0.8, 0.8),
        slice_spacing=3.0,
        origin_xyz=(-20.0, 15.0, 80.0),
        row_cosine=row,
        column_cosine=column,
        rng=np.random.default_rng(3),
    )
    write_image(make_image(), tmp_path / "inputs" / "plain.nii.gz")
    model, out = model_factory(), tmp_path / "out"
    args = ["predict", str(model), str(tmp_path / "inputs"), "-o", str(out), "--fast"]
    result = CliRunner().invoke(app_typer, [*args, "--device", "cpu", "--dicom-seg", "--report"])
    assert result.exit_code == 0, result.output
    assert "no DICOM-SEG written" in result.output  # the NIfTI case says why it has none
    assert not (out / "plain_seg.dcm").exists()

    labels = read_image(out / "ct1.nii.gz")
    ds = pydicom.dcmread(out / "ct1_seg.dcm")
    sources = [pydicom.dcmread(p) for p in series.iterdir()]
    assert ds.Modality == "SEG"
    assert ds.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    assert ds.StudyInstanceUID == sources[0].StudyInstanceUID
    (referenced,) = ds.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == series_uid
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == {
        s.SOPInstanceUID for s in sources
    }
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["ball", "shell"]

    # highdicom's own view, frame by source instance (slices sorted along the normal)
    normal = np.cross(row, column)
    ordered = sorted(sources, key=lambda s: float(np.asarray(s.ImagePositionPatient) @ normal))
    seg = hd.seg.Segmentation.from_dataset(ds)
    frames = seg.get_pixels_by_source_instance(
        [s.SOPInstanceUID for s in ordered], combine_segments=True, relabel=False
    )
    np.testing.assert_array_equal(frames, labels.array[0])
    assert np.unique(labels.array[0]).size > 1  # the random model did label something

    import json

    case_report = json.loads((out / "reports" / "ct1" / "report.json").read_text())
    assert case_report["units"]["intensity"] == "HU"  # the series' Modality says CT
    assert (out / "reports" / "cohort.csv").read_text().count("\n") == 3  # header, ct1, plain

    back = read_image(out / "ct1_seg.dcm")  # medseg's reader: same voxels and geometry
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.same_geometry(read_image(series), atol=1e-4)

    report = ["report", str(series), str(out / "ct1_seg.dcm"), "--model", str(model)]
    result = CliRunner().invoke(
        app_typer, [*report, "-o", str(tmp_path / "rep"), "--formats", "json"]
    )
    assert result.exit_code == 0, result.output
    structures = json.loads((tmp_path / "rep" / "report.json").read_text())["structures"]
    assert [s["voxels"] for s in structures] == [int((labels.array == v).sum()) for v in (1, 2)]
