"""report.html and report.pdf: same figures in both, self-contained, display orientation."""

from __future__ import annotations

import re

import numpy as np
from report_shapes import make_image

from medseg.report import LabelInfo, build_report, write_report
from medseg.report.figures import display_volume

GEOMETRY = {"spacing": (3.0, 1.0, 1.0), "origin": (0.0, 0.0, 0.0), "direction": np.eye(3)}


def _case():
    labels = np.zeros((10, 48, 48), np.uint8)
    labels[1:9, 6:42, 6:42] = 1
    labels[1:9, 20:30, 10:20] = 2
    for k, (z, y, x) in enumerate([(4, 10, 30), (5, 32, 32), (3, 36, 10)]):
        labels[z - 1 : z + 2, y : y + 4 + k, x : x + 3] = 3
    image = make_image((labels * 40 + 10).astype(np.int16), **GEOMETRY, meta={"modality": "CT"})
    return image, make_image(labels, **GEOMETRY)


def test_html_and_pdf_hold_the_same_figures(tmp_path):
    image, seg = _case()
    info = LabelInfo(names={1: "liver", 2: "kidney", 3: "tumour"})
    report = build_report(image, seg, labels=info)
    paths = write_report(report, image, seg, tmp_path, formats=("html", "pdf"))
    page = paths["html"].read_text()
    figures = re.findall(r"src='data:image/png;base64,", page)
    assert len(figures) == 4  # liver, kidney, one lesion sheet, volume plot
    assert "http" not in page.replace("https://", "")  # nothing fetched from elsewhere
    assert "Three tumours" in page
    pdf = paths["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type /Page\b", pdf)) == 1 + 4  # text page + the same 4 figures
    assert report.to_dict()["units"]["intensity"] == "HU"


def test_display_orientation_undoes_a_flipped_storage():
    image, seg = _case()
    flipped_geometry = {
        **GEOMETRY,
        "direction": np.diag([1.0, -1.0, -1.0]),
        "origin": (0.0, 47.0, 47.0),
    }
    flipped = make_image(seg.array[0, :, ::-1, ::-1].copy(), **flipped_geometry)
    plain = display_volume(image, seg.array[0], ct=True)
    other = display_volume(flipped, flipped.array[0], ct=True)
    assert np.array_equal(plain.labels, other.labels)
    assert np.allclose(other.to_display((4, 0, 0)), (4, 47, 47))


def test_pdf_text_keeps_every_word_and_shows_the_uncertainty():
    from medseg.report.render import _text_pages, report_tables

    image, seg = _case()
    uncertainty = make_image(np.full(seg.spatial_shape, 0.8, np.float32), **GEOMETRY)
    info = LabelInfo(names={1: "liver", 2: "kidney", 3: "tumour"})
    report = build_report(image, seg, labels=info, uncertainty=uncertainty)
    tables = {t.title: t for t in report_tables(report)}
    assert tables["Structures"].header[-1] == "uncertainty"
    assert tables["Lesions"].rows[0][-1] == "0.80"
    text = _text_pages(report)
    page = next(text).texts[0].get_text()
    for flag in report.findings.flags:  # long messages wrap, never cut off
        assert flag.message.split()[-1] in page
    assert all(len(line) <= 130 for line in page.splitlines())
    assert "uncertainty" not in report_tables(build_report(image, seg, labels=info))[0].header


def test_plural_of_lesion_class_names() -> None:
    from medseg.report.summary import _plural

    assert _plural("metastasis") == "metastases"
    assert _plural("lesion") == "lesions"
    assert _plural("abscess") == "abscesses"
    assert _plural("metastasis", 1) == "metastasis"
