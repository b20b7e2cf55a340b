"""Cross-validation of the case-level classification head on a fold's validation cases.

Each validation case of the preprocessed cache is predicted with the same sliding window as the
segmentation's final validation (:func:`medseg.train.validation.validate_cases`); the
bottleneck features of its windows give the case's class probabilities (mean over windows, see
:mod:`medseg.train.case_head`). ``val_metrics.json`` keeps them per case with the accuracy;
``medseg evaluate`` computes the AUC from a prediction folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medseg.plan.plan import Plan
from medseg.train.case_head import CaseClassifier, case_probabilities
from medseg.train.sampling import CaseSource
from medseg.train.validation import validate_cases

METHOD = (
    "sliding window on the preprocessed validation cases (overlap 0.5, no TTA); case "
    "probability = mean of the windows' probabilities"
)


def validate_classification(
    net: nn.Module,
    classifier: CaseClassifier,
    source: CaseSource,
    case_ids: Sequence[str],
    plan: Plan,
    config_name: str,
    *,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Class probabilities of each validation case and the accuracy over them.

    Returns
    -------
    dict
        ``target``, ``classes``, ``method``, ``accuracy`` (fraction of cases whose most probable
        class is the true one), ``n_cases`` and ``per_case``: ``{case: {"target": class,
        "probabilities": {class: p}}}``.
    """
    info, table = classifier.info, classifier.table
    classifier.head.eval()
    per_case: dict[str, dict[str, Any]] = {}
    for case_id in case_ids:
        with classifier.tap.collect() as pooled:
            validate_cases(net, source, [case_id], plan, config_name, device=device, dtype=dtype)
        probs = case_probabilities(classifier.head, info, pooled, table.rows[case_id])
        per_case[case_id] = {
            "target": table.value(case_id, info.target),
            "probabilities": dict(zip(info.classes, probs.tolist(), strict=True)),
        }
    correct = [
        max(row["probabilities"], key=row["probabilities"].get) == row["target"]
        for row in per_case.values()
    ]
    return {
        "target": info.target,
        "classes": list(info.classes),
        "method": METHOD,
        "accuracy": float(np.mean(correct)) if correct else float("nan"),
        "n_cases": len(per_case),
        "per_case": per_case,
    }
