"""``medseg weak`` commands: thin wrappers over medseg.weak, one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from medseg.cli.main import app
from medseg.data import load_dataset


def _run(monkeypatch, capsys, argv: list[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["medseg", *argv])
    with pytest.raises(SystemExit) as info:
        app()
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def test_sparse_corrupt_raters_consensus_check(monkeypatch, capsys, phantom_dataset, tmp_path):
    sparse = tmp_path / "sparse"
    code, out, _ = _run(
        monkeypatch,
        capsys,
        ["weak", "sparse", str(phantom_dataset), "-o", str(sparse), "--labels", "lesion"],
    )
    assert code == 0
    meta = json.loads((sparse / "dataset.json").read_text())["weak_labels"]
    assert meta["stroke_classes"] == [2]
    assert "annotated_fraction" in out
    assert "every lesion object is marked: all its voxels lie within" in out
    code, out, _ = _run(monkeypatch, capsys, ["weak", "check", str(sparse)])
    assert code == 0
    assert "% of voxels annotated" in out
    grown = tmp_path / "grown"
    argv = ["weak", "grow", str(sparse), "-o", str(grown), "--confidence", "0.9"]
    code, out, _ = _run(monkeypatch, capsys, argv)
    assert code == 0
    assert '"confidence": 0.9' in out
    code, _, err = _run(
        monkeypatch, capsys, ["weak", "grow", str(phantom_dataset), "-o", str(grown)]
    )
    assert code != 0
    assert "no ignore label" in err
    boxed = tmp_path / "boxed"
    assert (
        _run(monkeypatch, capsys, ["weak", "boxes", str(phantom_dataset), "-o", str(boxed)])[0] == 0
    )
    assert json.loads((boxed / "dataset.json").read_text())["weak_labels"]["kind"] == "boxes"
    noisy = tmp_path / "noisy"
    assert (
        _run(monkeypatch, capsys, ["weak", "corrupt", str(phantom_dataset), "-o", str(noisy)])[0]
        == 0
    )
    assert len(load_dataset(noisy).labelled) == 3
    raters = tmp_path / "raters"
    args = ["weak", "simulate-raters", str(phantom_dataset), "-o", str(raters), "--raters", "2"]
    assert _run(monkeypatch, capsys, args)[0] == 0
    consensus = tmp_path / "consensus"
    assert (
        _run(monkeypatch, capsys, ["weak", "consensus", str(raters), "-o", str(consensus)])[0] == 0
    )
    assert len(load_dataset(consensus).labelled) == 3
    out_json = tmp_path / "scores.json"
    labels = consensus / "labelsTr"
    pred = tmp_path / "pred"
    pred.mkdir()
    for path in labels.glob("case_?.nii.gz"):
        (pred / path.name).write_bytes(path.read_bytes())
    code, out, _ = _run(
        monkeypatch,
        capsys,
        ["weak", "score-raters", str(pred), str(consensus), "-o", str(out_json)],
    )
    assert code == 0
    assert "GED^2" in out
    assert json.loads(out_json.read_text())["mean"]["consensus_dice"]["1"] == pytest.approx(1.0)


def test_errors_are_one_line(monkeypatch, capsys, phantom_dataset: Path, tmp_path: Path):
    code, _, err = _run(
        monkeypatch,
        capsys,
        ["weak", "sparse", str(phantom_dataset), "-o", str(tmp_path / "x"), "--labels", "tumour"],
    )
    assert code == 1
    assert err.strip().count("\n") == 0
    assert "'tumour' is not a label name" in err
    code, _, err = _run(
        monkeypatch, capsys, ["weak", "consensus", str(phantom_dataset), "-o", str(tmp_path / "c")]
    )
    assert code == 1
    assert "no rater files" in err


def test_boxes_painted_and_its_refusal(monkeypatch, capsys, phantom_dataset, tmp_path):
    painted = tmp_path / "painted"
    argv = ["weak", "boxes", str(phantom_dataset), "-o", str(painted), "--painted"]
    assert _run(monkeypatch, capsys, argv)[0] == 0
    assert json.loads((painted / "dataset.json").read_text())["weak_labels"]["kind"] == (
        "painted boxes"
    )
    code, out, err = _run(
        monkeypatch,
        capsys,
        [*argv[:3], "-o", str(tmp_path / "x"), "--painted", "--uncertain-as-ignore"],
    )
    assert code != 0
    assert "uncertain_as_ignore" in out + err
    assert "Traceback" not in out + err
