"""The simulated-user evaluation: steps, files, summary numbers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medseg.data import load_dataset
from medseg.errors import DatasetError
from medseg.interactive.classical import RandomWalkerEngine
from medseg.interactive.protocol import evaluate_interactive, summarize


def test_cvpr_protocol_writes_steps_and_summary(sphere_dataset: Path, tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    result = evaluate_interactive(
        RandomWalkerEngine(),
        load_dataset(sphere_dataset),
        protocol="cvpr",
        classes=["sphere"],
        max_cases=2,
        out_dir=tmp_path,
        on_progress=lambda d, n: progress.append((d, n)),
    )
    assert progress == [(1, 2), (2, 2)]
    assert [r["step"] for r in result.rows] == [1, 2, 3, 4, 5, 6] * 2
    assert result.rows[0]["prompt"] == "box"
    sphere = result.summary["classes"]["sphere"]
    assert sphere["n_objects"] == 2
    assert sphere["dice_per_step"][0] > 0.8  # a bright sphere from its box
    with (tmp_path / "interactive_cvpr_steps.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 12
    saved = json.loads((tmp_path / "interactive_cvpr_summary.json").read_text())
    assert saved["classes"]["sphere"]["final_dice"] == pytest.approx(sphere["final_dice"])


def test_clicks_and_scribbles_protocols_run(sphere_dataset: Path) -> None:
    dataset = load_dataset(sphere_dataset)
    clicks = evaluate_interactive(
        RandomWalkerEngine(),
        dataset,
        protocol="clicks",
        classes=[2],
        max_cases=1,
        n_interactions=6,
    )
    assert clicks.rows[0]["prompt"] == "click+"
    assert 1 <= len(clicks.rows) <= 6
    scribbles = evaluate_interactive(
        RandomWalkerEngine(),
        dataset,
        protocol="scribbles",
        classes=[1],
        max_cases=1,
        n_interactions=3,
    )
    assert scribbles.rows[0]["prompt"] == "scribble+"
    assert scribbles.summary["classes"]["sphere"]["final_dice"] > 0.8


def test_summary_numbers_on_a_hand_made_sequence() -> None:
    rows = [
        {
            "case_id": "a",
            "label": "x",
            "step": i + 1,
            "prompt": p,
            "dice": d,
            "nsd": d,
            "iou": d / (2 - d),
            "seconds": 0.1,
        }
        for i, (p, d) in enumerate([("box", 0.5), ("click+", 0.8), ("click-", 0.9)])
    ]
    summary = summarize(rows, protocol="cvpr", n_interactions=3)["classes"]["x"]
    assert summary["dice_auc"] == pytest.approx((0.8 + 0.9) / 2)  # click steps only
    assert summary["final_dice"] == pytest.approx(0.9)
    # IoU after each interaction: 0.33, 0.67, 0.82 -> 85% never reached: capped at 3
    assert summary["noc85"] == 3
    assert summary["dice_per_step"] == pytest.approx([0.5, 0.8, 0.9])


def test_unknown_class_and_protocol_are_errors(sphere_dataset: Path) -> None:
    dataset = load_dataset(sphere_dataset)
    with pytest.raises(DatasetError, match="not a foreground label"):
        evaluate_interactive(RandomWalkerEngine(), dataset, classes=["liver"])
    with pytest.raises(DatasetError, match="protocol"):
        evaluate_interactive(RandomWalkerEngine(), dataset, protocol="taps")  # type: ignore[arg-type]


def test_early_stop_carries_the_last_score() -> None:
    rows = [
        {
            "case_id": c,
            "label": "x",
            "step": i + 1,
            "prompt": "click+",
            "dice": d,
            "nsd": d,
            "iou": d / (2 - d),
            "seconds": 0.0,
        }
        for c, ds in (("a", [0.96] * 5), ("b", [0.5, 0.6, 0.7, 0.8, 0.9, 0.97]))
        for i, d in enumerate(ds)
    ]
    summary = summarize(rows, protocol="clicks", n_interactions=6)["classes"]["x"]
    assert summary["dice_per_step"][-1] == pytest.approx((0.96 + 0.97) / 2)
    assert np.isclose(summary["noc90"], (1 + 6) / 2)
