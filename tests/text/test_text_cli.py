"""``medseg find`` and ``medseg ground`` on files: masks keep the geometry, JSON explains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from text_phantom import NAMES, VARIANTS, canonical_labels, canonical_object
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.io import Image, read_image, write_image
from medseg.report import LabelInfo, build_report
from medseg.text import AmbiguousQuery


def _files(tmp_path: Path) -> tuple[Path, Path, Path, Image]:
    store, direction, spacing, origin = VARIANTS["x_flipped"]
    seg = Image(store(canonical_labels())[None], spacing, origin, direction)
    image = seg.with_array(seg.array.astype(np.float32))
    write_image(image, tmp_path / "case_0000.nii.gz")
    write_image(seg, tmp_path / "case.nii.gz")
    labels = {"background": 0} | {name: value for value, name in NAMES.items()}
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": labels}))
    return tmp_path / "case_0000.nii.gz", tmp_path / "case.nii.gz", tmp_path / "dataset.json", seg


def test_find_writes_mask_with_geometry_and_explanation(tmp_path: Path) -> None:
    image, seg_path, dataset, seg = _files(tmp_path)
    result = CliRunner().invoke(
        app_typer,
        [
            "find",
            str(image),
            str(seg_path),
            "the largest lesion on the left",
            "--dataset-json",
            str(dataset),
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    mask = read_image(tmp_path / "out" / "selection.nii.gz")
    assert mask.same_geometry(seg)
    store = VARIANTS["x_flipped"][0]
    assert np.array_equal(mask.array[0] > 0, store(canonical_object("F")))
    data = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert data["clauses"][0]["selected"][0]["side"] == "left"
    assert "lesion 2" in result.stdout


def test_find_ambiguous_is_one_line_and_exit_1(tmp_path: Path) -> None:
    image, seg_path, dataset, _ = _files(tmp_path)
    result = CliRunner().invoke(
        app_typer,
        [
            "find",
            str(image),
            str(seg_path),
            "the lesion",
            "--dataset-json",
            str(dataset),
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, AmbiguousQuery)  # main() prints MedsegError in one line
    assert "asks for 1 but 7 match" in str(result.exception)


def test_ground_resolves_report_sentences(tmp_path: Path) -> None:
    image, seg_path, dataset, seg = _files(tmp_path)
    summary = build_report(seg, seg, labels=LabelInfo(names=NAMES)).summary
    text = (
        summary + "\nThe spleen is normal in size.\nThere is a small hypodense cyst in segment 7.\n"
    )
    (tmp_path / "report.txt").write_text(text)
    result = CliRunner().invoke(
        app_typer,
        [
            "ground",
            str(tmp_path / "report.txt"),
            str(image),
            str(seg_path),
            "--dataset-json",
            str(dataset),
            "-o",
            str(tmp_path / "g"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "g" / "grounding.json").read_text())
    statuses = {row["sentence"]: row["status"] for row in data["sentences"]}
    tumor = next(s for s in statuses if s.startswith("Four tumors"))
    assert statuses[tumor] == "resolved"
    assert statuses["There is a small hypodense cyst in segment 7."] == "not_understood"
    row = next(r for r in data["sentences"] if r["sentence"] == tumor)
    mask = read_image(tmp_path / "g" / row["mask"])
    store = VARIANTS["x_flipped"][0]
    assert np.array_equal(mask.array[0] > 0, store(canonical_object("B")))
    assert data["resolved"] >= 2
