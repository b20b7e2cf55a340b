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
