"""Case-level classification scores: AUC against scikit-learn, counts, folder evaluation, report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medseg.errors import DatasetError
from medseg.evaluate import evaluate_folders
from medseg.evaluate.classification import (
    classification_metrics,
    evaluate_classification,
    roc_auc,
)


def test_binary_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    scores = np.round(rng.random(40) + 0.3 * y, 1)  # rounded: many ties
    assert roc_auc(y == 1, scores) == pytest.approx(roc_auc_score(y, scores))
    assert roc_auc([True, False], [0.9, 0.1]) == 1.0
    assert roc_auc([True, False, True], [0.5, 0.5, 0.5]) == 0.5
    assert math.isnan(roc_auc([True, True], [0.2, 0.3]))


def test_multiclass_macro_ovr_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = np.arange(30) % 3
    logits = rng.normal(size=(30, 3)) + 1.5 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    metrics = classification_metrics(y.tolist(), probs, ["a", "b", "c"])
    expected = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert metrics["auc"] == pytest.approx(expected)
    assert metrics["correct"] == int((probs.argmax(1) == y).sum())
    assert metrics["accuracy"] == pytest.approx(metrics["correct"] / 30)
    assert metrics["counts"] == {"a": 10, "b": 10, "c": 10}
    assert np.array(metrics["confusion"]).sum() == 30
    assert np.trace(np.array(metrics["confusion"])) == metrics["correct"]


def test_binary_uses_the_second_class() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    metrics = classification_metrics([0, 1, 1, 0], probs, ["benign", "malignant"])
    assert metrics["auc"] == pytest.approx(roc_auc_score([0, 1, 1, 0], probs[:, 1]))
    assert metrics["confusion"] == [[1, 1], [1, 1]]
    assert metrics["correct"] == 2


def _write(folder: Path, cases: dict[str, float]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = {
        case: {
            "predicted": "high" if p > 0.5 else "low",
            "probabilities": {"high": p, "low": 1 - p},
        }
        for case, p in cases.items()
    }
    data = {"target": "risk", "classes": ["high", "low"], "method": "m", "cases": rows}
    (folder / "classification.json").write_text(json.dumps(data))


def test_evaluate_classification_and_left_out_cases(tmp_path: Path) -> None:
    pred = tmp_path / "pred"
    _write(pred, {"a": 0.9, "b": 0.2, "c": 0.6, "d": 0.4, "e": 0.5, "f": 0.5})
    table = tmp_path / "cases.csv"
    table.write_text("case,risk\na,high\nb,low\nc,low\nd,high\ne,\n")
    scores = evaluate_classification(pred, table)
    assert scores["n"] == 4
    assert scores["correct"] == 2  # a and b
    # p(low) is the score of the second class: low cases b (0.8), c (0.4); high a (0.1), d (0.6)
    assert scores["auc"] == pytest.approx(roc_auc_score([0, 1, 1, 0], [0.1, 0.8, 0.4, 0.6]))
    assert scores["unscored"] == {"e": "no true value", "f": "no row in the case table"}
    bad = tmp_path / "other.csv"
    bad.write_text("case,age\na,1\n")
    with pytest.raises(DatasetError, match="no column 'risk'"):
        evaluate_classification(pred, bad)
    with pytest.raises(DatasetError, match="trained with --classify"):
        evaluate_classification(tmp_path / "nothing", table)


def test_folder_evaluation_reports_classification(dataset, tmp_path: Path) -> None:
    root, pred_dir, cases = dataset
    _write(pred_dir, {case: p for case, p in zip(cases, (0.9, 0.8, 0.3, 0.6), strict=True)})
    (root / "cases.csv").write_text(
        "case,risk\n" + "".join(f"{c},{r}\n" for c, r in zip(cases, "hhll", strict=True))
        .replace(",h", ",high").replace(",l", ",low")
    )  # fmt: skip
    out = tmp_path / "out"
    result = evaluate_folders(pred_dir, root, out_dir=out)
    scores = result.summary["classification"]
    assert scores["n"] == 4
    assert scores["correct"] == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classification"]["accuracy"] == pytest.approx(0.75)
    html = (out / "report.html").read_text()
    assert "Case-level classification: risk" in html
    assert "3 / 4" in html
    assert "ROC curve" in html
