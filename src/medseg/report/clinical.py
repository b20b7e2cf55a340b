"""The :class:`ClinicalReport`: a case's findings with their plain-language summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medseg.report.findings import Findings
from medseg.report.schema import report_to_dict


@dataclass(frozen=True)
class ClinicalReport:
    """Findings of one case with their plain-language summary (and a custom one, if asked)."""

    findings: Findings
    summary: str
    custom_summary: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``report.json`` dictionary."""
        return report_to_dict(self.findings, self.summary, self.custom_summary)
