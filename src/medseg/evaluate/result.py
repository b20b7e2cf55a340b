"""The outcome of a folder evaluation, below the modules that compute, write and report it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EvaluationResult:
    """Outcome of :func:`evaluate_folders`.

    Attributes
    ----------
    rows : list of dict
        One row per case × class: ``case``, ``class``, ``status``, metrics,
        ``image_diagonal_mm``.
    summary : dict
        JSON-ready: per-class statistics (:func:`medseg.evaluate.summary.summarize`), the
        options used, unexpected label values per case.
    out_dir : Path, optional
        Folder holding ``metrics_per_case.csv``, ``summary.json`` and ``report.html``.
    """

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path | None = field(default=None)

    def table(self, metrics: Sequence[str] = ("dice", "hd95", "nsd")) -> Any:
        """A Rich table of the per-class mean ± std of ``metrics``."""
        from rich.table import Table

        table = Table(title=f"{self.summary['n_cases']} cases")
        table.add_column("class")
        per_class = self.summary["classes"]
        shown = [m for m in metrics if any(m in stats for stats in per_class.values())]
        for metric in shown:
            table.add_column(metric, justify="right")
        for name, stats in per_class.items():
            cells = []
            for metric in shown:
                s = stats.get(metric, {})
                mean, std = s.get("mean"), s.get("std")
                cells.append("-" if mean is None else f"{mean:.4g} ± {std or 0:.2g}")
            table.add_row(name, *cells)
        return table
