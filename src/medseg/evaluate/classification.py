"""Case-level classification scores: AUC and accuracy of ``classification.json`` vs a case table.

:func:`evaluate_classification` pairs a prediction folder's ``classification.json`` (written by
``medseg predict`` for a model trained with ``--classify``) with the true values of the same
column in a case table. Reported: the number of scored cases, accuracy (most probable class =
true class) with its counts, the confusion matrix, and the ROC AUC: for two classes the AUC of
the second class's probability (classes sorted as in training, e.g. ``0``/``1`` or
``benign``/``malignant``), for more the macro mean of one-vs-rest AUCs over the classes that
have both positive and negative cases. The AUC is the Mann-Whitney statistic (ties count 1/2),
as scikit-learn's ``roc_auc_score``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from medseg._typing import PathLikeStr
from medseg.data.case_table import CaseTable, read_case_table
from medseg.errors import DatasetError

CLASSIFICATION_JSON = "classification.json"
"""The file ``medseg predict`` writes beside the label maps of a classifying model."""


def roc_auc(positive: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positive`` (NaN if one-sided).

    The probability that a random positive case scores above a random negative one, ties
    counting one half (the Mann-Whitney U statistic over the product of the class sizes).
    """
    truth = np.asarray(positive, dtype=bool)
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    truth: Sequence[int], probabilities: npt.ArrayLike, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, confusion matrix and AUC of class probabilities.

    Parameters
    ----------
    truth : sequence of int
        True class index of each case, ``(N,)``.
    probabilities : array_like, shape (N, K)
        Predicted class probabilities, columns in ``classes`` order.
    classes : sequence of str
        The ``K`` class names.

    Returns
    -------
    dict
        ``n``, ``correct``, ``accuracy``, ``auc`` (binary: of ``classes[1]``; else macro
        one-vs-rest, None when undefined), ``auc_method``, ``auc_per_class`` (one-vs-rest),
        ``counts`` (true cases per class), ``confusion`` (rows: true class, columns: predicted).
    """
    y = np.asarray(truth, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float64).reshape(len(y), len(classes))
    predicted = probs.argmax(1) if len(y) else np.zeros(0, np.int64)
    per_class = {c: roc_auc(y == k, probs[:, k]) for k, c in enumerate(classes)}
    if len(classes) == 2:
        auc, method = per_class[classes[1]], f"ROC AUC of p({classes[1]})"
    else:
        defined = [v for v in per_class.values() if not math.isnan(v)]
        auc = float(np.mean(defined)) if defined else math.nan
        method = "macro mean of one-vs-rest ROC AUCs (classes with positive and negative cases)"
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    correct = int((predicted == y).sum())
    return {
        "n": len(y),
        "correct": correct,
        "accuracy": correct / len(y) if len(y) else None,
        "auc": None if math.isnan(auc) else auc,
        "auc_method": method,
        "auc_per_class": {c: None if math.isnan(v) else v for c, v in per_class.items()},
        "counts": {c: int((y == k).sum()) for k, c in enumerate(classes)},
        "confusion": confusion.tolist(),
    }


def evaluate_classification(
    predictions: PathLikeStr, case_table: PathLikeStr | CaseTable
) -> dict[str, Any]:
    """Score a prediction folder's (or file's) ``classification.json`` against a case table.

    Parameters
    ----------
    predictions : path
        A prediction folder holding ``classification.json``, or that file.
    case_table : path or CaseTable
        The case table with the true values of the predicted column.

    Returns
    -------
    dict
        :func:`classification_metrics` plus ``target``, ``classes``, ``method`` (how the case
        probabilities were made), ``per_case`` (true class, predicted class, probabilities) and
        ``unscored``: cases left out (no row, no value, or a value not among the classes).

    Raises
    ------
    DatasetError
        ``classification.json`` missing or malformed; the case table lacks the column.
    """
    path = Path(predictions)
    path = path / CLASSIFICATION_JSON if path.is_dir() else path
    try:
        data = json.loads(path.read_text())
        target, classes, cases = data["target"], list(data["classes"]), data["cases"]
    except FileNotFoundError as err:
        raise DatasetError(
            f"{path}: not found; predict with a model trained with --classify"
        ) from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{path}: not a medseg classification.json ({err})") from err
    table = case_table if isinstance(case_table, CaseTable) else read_case_table(case_table)
    table.require_fields([target])
    truth, probs, per_case, unscored = [], [], {}, {}
    for case_id, row in sorted(cases.items()):
        value = table.rows[case_id][target] if case_id in table.rows else None
        if case_id not in table.rows or value is None or value not in classes:
            unscored[case_id] = (
                "no row in the case table"
                if case_id not in table.rows
                else "no true value"
                if value is None
                else f"true value {value!r} is not a class of the model"
            )
            continue
        truth.append(classes.index(value))
        probs.append([float(row["probabilities"][c]) for c in classes])
        per_case[case_id] = {
            "true": value,
            "predicted": row["predicted"],
            "probabilities": row["probabilities"],
        }
    metrics = classification_metrics(truth, np.array(probs).reshape(-1, len(classes)), classes)
    return {
        "target": target,
        "classes": classes,
        "method": data.get("method", ""),
        **metrics,
        "per_case": per_case,
        "unscored": unscored,
    }
