"""``medseg demo`` prints where every output is (the run itself is faked: see test_demo.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from medseg.cli.main import app
from medseg.demo import DemoResult


def test_demo_prints_every_output(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "demo"
    calls = []

    def fake_run_demo(path, **options) -> DemoResult:
        calls.append((Path(path), options))
        return DemoResult(
            out_dir=out,
            dataset_dir=out / "Dataset001_BrainExample",
            model_dir=out / "model",
            predictions_dir=out / "predictions",
            evaluation_dir=out / "evaluation",
            summary_html=out / "summary.html",
            dice={"case_1": {"grey_matter": 0.9}},
            mean_dice={"grey_matter": 0.9},
            seconds={"train": 1.0},
        )

    monkeypatch.setattr("medseg.demo.run_demo", fake_run_demo)
    monkeypatch.setattr(sys, "argv", ["medseg", "demo", "-o", str(out), "--cases", "3"])
    with pytest.raises(SystemExit) as info:
        app()
    printed = capsys.readouterr().out
    assert info.value.code == 0
    assert calls[0][0] == out
    assert calls[0][1]["cases"] == 3
    for name in ("summary.html", "evaluation", "model", "predictions", "report.html"):
        assert str(out / name) in printed or str(out / "report" / name) in printed, name
