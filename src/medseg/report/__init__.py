"""Clinical reports from a segmentation: measurements, lesions, change, flags, summary.

Start with :func:`report_files` (files in, ``report.json``/``.html``/``.pdf`` out) or
:func:`build_report` (images in memory). The measurements live in :class:`Findings`; the lesions
in a :class:`LesionTable` that can be filtered without measuring again. Units and definitions
are in ``docs/report.md``.
"""

from medseg.report.api import build_report, report_files, write_report
from medseg.report.clinical import ClinicalReport
from medseg.report.cohort import CohortResult, ReportCase, report_cohort
from medseg.report.findings import Findings, PriorScan, ReportOptions, compute_findings
from medseg.report.inputs import LabelInfo, read_label_info
from medseg.report.lesions import Lesion, LesionTable
from medseg.report.longitudinal import Change, LesionMatch
from medseg.report.quality import Flag
from medseg.report.schema import REPORT_SCHEMA, SCHEMA_VERSION
from medseg.report.tables import cohort_row, write_csv

__all__ = [
    "REPORT_SCHEMA",
    "SCHEMA_VERSION",
    "Change",
    "ClinicalReport",
    "CohortResult",
    "Findings",
    "Flag",
    "LabelInfo",
    "Lesion",
    "LesionMatch",
    "LesionTable",
    "PriorScan",
    "ReportCase",
    "ReportOptions",
    "build_report",
    "cohort_row",
    "compute_findings",
    "read_label_info",
    "report_cohort",
    "report_files",
    "write_csv",
    "write_report",
]
