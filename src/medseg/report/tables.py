"""CSV tables for researchers: per-case structures and lesions, and one cohort row per case."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg._atomic import write_text_atomic
from medseg.report.findings import Findings


def structure_rows(findings: Findings) -> list[dict[str, Any]]:
    """One row per structure: volume, voxels, bounding box size and intensity statistics."""
    rows = []
    for s in findings.structures:
        row: dict[str, Any] = {
            "case_id": findings.case_id,
            "label": s.label,
            "name": s.name,
            "voxels": s.voxels,
            "volume_ml": _r(s.volume_ml),
        }
        for axis, size in zip("zyx", s.bbox_size_mm or (None,) * 3, strict=True):
            row[f"bbox_{axis}_mm"] = _r(size)
        for channel, stats in s.intensity.items():
            for key in ("mean", "median", "std", "p5", "p95"):
                row[f"{channel}_{key}"] = _r(getattr(stats, key))
        row["mean_uncertainty"] = _r(s.mean_uncertainty)
        rows.append(row)
    return rows


def lesion_rows(findings: Findings) -> list[dict[str, Any]]:
    """One row per lesion: size, axes, centroid (LPS mm), side and containing structure."""
    return [
        {
            "case_id": findings.case_id,
            "lesion_id": lesion.lesion_id,
            "class": lesion.label_name,
            "volume_ml": _r(lesion.volume_ml),
            "longest_diameter_mm": _r(lesion.longest_diameter_mm),
            "long_axis_mm": _r(lesion.long_axis_mm),
            "short_axis_mm": _r(lesion.short_axis_mm),
            "centroid_x_mm": _r(lesion.centroid_lps_mm[0]),
            "centroid_y_mm": _r(lesion.centroid_lps_mm[1]),
            "centroid_z_mm": _r(lesion.centroid_lps_mm[2]),
            "side": lesion.side,
            "structure": lesion.structure or "",
            "touches_border": lesion.touches_border,
            "mean_uncertainty": _r(lesion.mean_uncertainty),
        }
        for lesion in findings.lesions
    ]


def cohort_row(findings: Findings) -> dict[str, Any]:
    """One row summarising a case: volumes per structure, lesion counts and burden, change."""
    row: dict[str, Any] = {"case_id": findings.case_id}
    for s in findings.structures:
        if not s.is_lesion_class:
            row[f"{s.name}_volume_ml"] = _r(s.volume_ml)
    for burden in findings.burden:
        row[f"{burden.name}_count"] = burden.count
        row[f"{burden.name}_total_ml"] = _r(burden.total_volume_ml)
    largest = findings.lesions.largest()
    row["largest_lesion_ml"] = _r(largest.volume_ml) if largest else ""
    if findings.change is not None:
        row["new_lesions"] = findings.change.new
        row["resolved_lesions"] = findings.change.resolved
        row["total_change_percent"] = _r(findings.change.total_change_percent)
    row["flags"] = ";".join(f"{f.code}:{f.target}" for f in findings.flags)
    return row


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write rows (the union of their keys as header, first-seen order) atomically."""
    header: list[str] = []
    for row in rows:
        header.extend(k for k in row if k not in header)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(buffer.getvalue(), Path(path))
    return Path(path)


def _r(value: float | None) -> float | str:
    return "" if value is None else round(float(value), 4)
