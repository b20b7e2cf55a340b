"""Case-level class probabilities from a model trained with ``--classify`` (``medseg predict``).

The predictor's sliding window already runs every fold's network over the case's windows (and
their mirrored copies); a hook on each network's bottleneck (:class:`~medseg.train.case_head.
BottleneckTap`) keeps the pooled features of every window. Each fold's head turns each window's
features, with the case's metadata encoded as that fold learned it, into class probabilities;
the case's probabilities are the mean over windows (each window is an input like the training
patches the head learned from), then over folds. No extra network pass is needed.

Outputs, in the prediction folder: ``classification.csv`` (``case``, ``predicted``, one
``p_<class>`` column per class) and ``classification.json`` (the target column, the classes, the
method and the same values per case), written after the last case.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medseg._atomic import write_text_atomic
from medseg._config import write_json
from medseg.data.case_table import CaseTable
from medseg.errors import ConfigError, ModelFormatError
from medseg.train.case_head import CaseHead, CaseHeadInfo, case_probabilities, load_case_head
from medseg.train.model_folder import ModelFolder, fold_dir

CLASSIFICATION_CSV = "classification.csv"
CLASSIFICATION_JSON = "classification.json"
METHOD = (
    "mean over sliding windows (and mirrored copies) of each window's class probabilities, "
    "then over folds"
)


@dataclass(frozen=True)
class CaseClassification:
    """One case's predicted class and probabilities (``classes`` order)."""

    target: str
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]

    @property
    def predicted(self) -> str:
        return self.classes[int(np.argmax(self.probabilities))]


class FoldHeads:
    """The classification heads of a model's folds, and what they need from a case.

    Parameters
    ----------
    model : ModelFolder
    folds : sequence of int
    device : torch.device
    """

    def __init__(self, model: ModelFolder, folds: Sequence[int], device: torch.device) -> None:
        self.heads: dict[int, tuple[CaseHead, CaseHeadInfo]] = {
            fold: load_case_head(fold_dir(model.path, fold), device) for fold in folds
        }
        infos = [info for _, info in self.heads.values()]
        first = infos[0]
        if any(i.classes != first.classes or i.target != first.target for i in infos):
            raise ModelFormatError(f"{model.path}: the folds' heads predict different classes")
        self.target, self.classes = first.target, first.classes
        self.fields = tuple(f.name for f in first.metadata.fields)

    @staticmethod
    def of(model: ModelFolder, folds: Sequence[int], device: torch.device) -> FoldHeads | None:
        """The heads when the model was trained with classification, else None."""
        if model.config.training.classification.target is None:
            return None
        return FoldHeads(model, folds, device)

    def metadata(
        self, case_id: str, table: CaseTable | None, given: Mapping[str, str | None] | None
    ) -> Mapping[str, str | None]:
        """The case's metadata values: ``given``, else its case-table row.

        Raises
        ------
        ConfigError
            The model reads metadata and neither ``given`` nor a table row exists.
        """
        if given is not None or not self.fields:
            return dict(given or {})
        if table is None:
            raise ConfigError(
                f"the model's classifier reads metadata ({', '.join(self.fields)}); pass a "
                "case table (--case-table FILE) with a row for each case"
            )
        table.require_cases([case_id])
        return table.rows[case_id]

    def classify(
        self, pooled: Mapping[int, Sequence[torch.Tensor]], values: Mapping[str, str | None]
    ) -> CaseClassification:
        """Mean over folds of each fold's window-averaged probabilities."""
        probs = [
            case_probabilities(head, info, pooled[fold], values)
            for fold, (head, info) in self.heads.items()
        ]
        mean = np.mean(probs, axis=0)
        return CaseClassification(self.target, self.classes, tuple(float(p) for p in mean))


def write_classification(results: Mapping[str, CaseClassification], out_dir: Path) -> None:
    """Write ``classification.csv`` and ``classification.json`` for ``results`` (case -> result)."""
    if not results:
        return
    first = next(iter(results.values()))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case", "predicted", *(f"p_{c}" for c in first.classes)])
    for case_id, result in results.items():
        writer.writerow([case_id, result.predicted, *(f"{p:.6f}" for p in result.probabilities)])
    write_text_atomic(buffer.getvalue(), Path(out_dir) / CLASSIFICATION_CSV)
    write_json(
        {
            "target": first.target,
            "classes": list(first.classes),
            "method": METHOD,
            "cases": {
                case_id: {
                    "predicted": r.predicted,
                    "probabilities": dict(zip(r.classes, r.probabilities, strict=True)),
                }
                for case_id, r in results.items()
            },
        },
        Path(out_dir) / CLASSIFICATION_JSON,
    )
