"""Write an evaluation to disk: per-case CSV, summary JSON and the HTML report (atomic writes)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from medseg._atomic import write_text_atomic
from medseg._config import write_json
from medseg.errors import MedsegError
from medseg.evaluate.summary import NON_METRIC_COLUMNS, metric_columns

if TYPE_CHECKING:
    from medseg.evaluate.result import EvaluationResult

CSV_NAME = "metrics_per_case.csv"
SUMMARY_NAME = "summary.json"
REPORT_NAME = "report.html"


def rows_to_csv(rows: Sequence[dict[str, float | str]]) -> str:
    """CSV text: one row per case × class, identifying columns first, then metrics.

    Undefined values are written ``nan``, distances to an empty mask ``inf``.
    """
    columns = [c for c in NON_METRIC_COLUMNS if any(c in r for r in rows)]
    columns += metric_columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k, math.nan)) for k in columns})
    return buffer.getvalue()


def _cell(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "nan"
    return repr(float(value))


def write_outputs(
    result: EvaluationResult,
    out_dir: Path,
    *,
    pairs: Sequence[tuple[str, Path, Path]],
    images_dir: Path | None,
    report: bool = True,
) -> None:
    """Write ``metrics_per_case.csv``, ``summary.json`` and (optionally) ``report.html``."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MedsegError(f"{out_dir}: cannot create the output folder ({err})") from err
    write_text_atomic(rows_to_csv(result.rows), out_dir / CSV_NAME)
    write_json(result.summary, out_dir / SUMMARY_NAME)
    if report:
        from medseg.evaluate.html_report import render_report

        html = render_report(result, pairs=pairs, images_dir=images_dir)
        write_text_atomic(html, out_dir / REPORT_NAME)
