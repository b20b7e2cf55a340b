"""Reports for many cases (``medseg predict --report``): one folder per case and a cohort CSV."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg._typing import PathLikeStr
from medseg.errors import MedsegError
from medseg.io import read_channels, read_image
from medseg.report.api import ALL_FORMATS, Format, build_report, write_report
from medseg.report.inputs import LabelInfo
from medseg.report.tables import cohort_row, write_csv

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ReportCase:
    """One case to report: its image file(s) (one per channel, or a DICOM folder), its label
    map and, optionally, an uncertainty map on the same grid."""

    case_id: str
    image_paths: tuple[Path, ...]
    segmentation: Path
    uncertainty: Path | None = None


@dataclass(frozen=True)
class CohortResult:
    """Written report files per case, failures (case -> one-line reason) and the cohort CSV."""

    reports: dict[str, dict[str, Path]]
    failures: dict[str, str] = field(default_factory=dict)
    cohort_csv: Path | None = None


def report_cohort(
    cases: Sequence[ReportCase],
    out_dir: PathLikeStr,
    *,
    labels: LabelInfo | None = None,
    lesion_labels: Sequence[str | int] | None = None,
    formats: Sequence[Format] = ALL_FORMATS,
    on_progress: Callable[[int, int], None] | None = None,
) -> CohortResult:
    """Write ``out_dir/<case_id>/report.*`` for every case and ``out_dir/cohort.csv``.

    A case that fails (unreadable file, grid mismatch) is recorded in ``failures`` and the
    others go on. The cohort CSV has one row per reported case (see
    :func:`medseg.report.tables.cohort_row`).
    """
    out = Path(out_dir)
    rows, reports, failures = [], {}, {}
    for done, case in enumerate(cases, start=1):
        try:
            image = (
                read_image(case.image_paths[0])
                if len(case.image_paths) == 1
                else read_channels(case.image_paths)
            )
            seg = read_image(case.segmentation)
            unc = read_image(case.uncertainty) if case.uncertainty else None
            sources = {"image": str(case.image_paths[0]), "segmentation": str(case.segmentation)}
            if case.uncertainty:
                sources["uncertainty"] = str(case.uncertainty)
            report = build_report(
                image,
                seg,
                labels=labels,
                lesion_labels=lesion_labels,
                uncertainty=unc,
                case_id=case.case_id,
                sources=sources,
            )
            reports[case.case_id] = write_report(
                report, image, seg, out / case.case_id, formats=formats
            )
            rows.append(cohort_row(report.findings))
        except MedsegError as err:
            logger.warning("report for %s failed: %s", case.case_id, err)
            failures[case.case_id] = str(err)
        if on_progress is not None:
            on_progress(done, len(cases))
    cohort = write_csv(rows, out / "cohort.csv") if rows else None
    return CohortResult(reports, failures, cohort)
