"""The ``report.json`` format: :func:`report_to_dict` and its JSON Schema, :data:`REPORT_SCHEMA`.

The schema is versioned by :data:`SCHEMA_VERSION` (major.minor): a minor version adds optional
keys, a major version changes or removes keys. ``docs/report.md`` describes every field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from medseg import __version__
from medseg.report.findings import Findings

SCHEMA_VERSION = "1.1"


def report_to_dict(
    findings: Findings, summary: str, custom_summary: str | None = None
) -> dict[str, Any]:
    """The JSON dictionary of a report (see :data:`REPORT_SCHEMA`)."""
    hounsfield = (findings.modality or "").upper() == "CT"
    change = findings.change
    return {
        "schema": "medseg-report",
        "schema_version": SCHEMA_VERSION,
        "medseg_version": __version__,
        "case_id": findings.case_id,
        "sources": dict(findings.sources),
        "modality": findings.modality,
        "coordinate_system": "LPS",
        "units": {
            "volume": "ml",
            "length": "mm",
            "coordinates": "mm",
            "intensity": "HU" if hounsfield else "a.u.",
        },
        "image": {
            "shape": list(findings.shape),
            "spacing_mm": list(findings.spacing_mm),
            "orientation": findings.orientation,
        },
        "structures": [_plain(s) for s in findings.structures],
        "lesions": [_plain(lesion) for lesion in findings.lesions],
        "lesion_burden": [_plain(b) for b in findings.burden],
        "change": None
        if change is None
        else {
            **{k: v for k, v in _plain(change).items() if k != "prior_lesions"},
            "prior_lesions": [_plain(lesion) for lesion in change.prior_lesions],
        },
        "flags": [_plain(f) for f in findings.flags],
        "summary": summary,
        "custom_summary": custom_summary,
    }


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _num(nullable: bool = False) -> dict[str, Any]:
    return {"type": ["number", "null"]} if nullable else {"type": "number"}


def _vec(n: int, nullable: bool = False) -> dict[str, Any]:
    array = {"type": "array", "items": {"type": "number"}, "minItems": n, "maxItems": n}
    return {"anyOf": [array, {"type": "null"}]} if nullable else array


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": sorted(props),
        "additionalProperties": False,
    }


_SEGMENT = {"type": "array", "items": _vec(3), "minItems": 2, "maxItems": 2}
_COUNT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_INTENSITY = _obj({k: _num() for k in ("mean", "median", "std", "p5", "p95")} | {"unit": _STR})
_STRUCTURE = _obj(
    {
        "label": _COUNT,
        "name": _STR,
        "is_lesion_class": {"type": "boolean"},
        "voxels": _COUNT,
        "volume_ml": {"type": "number", "minimum": 0},
        "bbox_index": {
            "anyOf": [
                {"type": "array", "items": {"type": "array", "items": _COUNT}},
                {"type": "null"},
            ]
        },
        "bbox_size_mm": _vec(3, nullable=True),
        "bbox_lps_min_mm": _vec(3, nullable=True),
        "bbox_lps_max_mm": _vec(3, nullable=True),
        "intensity": {"type": "object", "additionalProperties": _INTENSITY},
        "mean_uncertainty": _num(nullable=True),
    }
)
_LESION = _obj(
    {
        "lesion_id": {"type": "integer", "minimum": 1},
        "label": _COUNT,
        "label_name": _STR,
        "voxels": {"type": "integer", "minimum": 1},
        "volume_ml": {"type": "number", "minimum": 0},
        "longest_diameter_mm": {"type": "number", "minimum": 0},
        "long_axis_mm": {"type": "number", "minimum": 0},
        "short_axis_mm": {"type": "number", "minimum": 0},
        "axial_axis": {"type": "integer", "minimum": 0, "maximum": 2},
        "axial_slice": _COUNT,
        "long_axis_lps_mm": _SEGMENT,
        "short_axis_lps_mm": _SEGMENT,
        "long_axis_index": _SEGMENT,
        "short_axis_index": _SEGMENT,
        "centroid_lps_mm": _vec(3),
        "side": {"enum": ["left", "right", "midline"]},
        "structure": {"type": ["string", "null"]},
        "structures": {"type": "array", "items": _STR},
        "touches_border": {"type": "boolean"},
        "mean_uncertainty": _num(nullable=True),
        "bbox_index": {"type": "array", "items": {"type": "array", "items": _COUNT}},
    }
)
_IDS = {"type": "array", "items": {"type": "integer", "minimum": 1}}
_MATCH = _obj(
    {
        "current_ids": _IDS,
        "prior_ids": _IDS,
        "status": {"enum": ["new", "resolved", "persistent", "merged", "split"]},
        "volume_prior_ml": _num(),
        "volume_current_ml": _num(),
        "change_percent": _num(nullable=True),
    }
)
_CHANGE = _obj(
    {
        "matches": {"type": "array", "items": _MATCH},
        "new": _COUNT,
        "resolved": _COUNT,
        "total_prior_ml": _num(),
        "total_current_ml": _num(),
        "total_change_percent": _num(nullable=True),
        "same_geometry": {"type": "boolean"},
        "note": _STR,
        "prior_lesions": {"type": "array", "items": _LESION},
    }
)
_FLAG = _obj(
    {
        "code": {
            "enum": [
                "empty_structure",
                "volume_out_of_range",
                "lesion_at_border",
                "low_confidence",
                "overlapping_segments",
            ]
        },
        "target": _STR,
        "message": _STR,
    }
)

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": f"https://medseg.invalid/schemas/report-{SCHEMA_VERSION}.json",
    "title": "medseg clinical report",
    **_obj(
        {
            "schema": {"const": "medseg-report"},
            "schema_version": {"type": "string", "pattern": r"^\d+\.\d+$"},
            "medseg_version": _STR,
            "case_id": _STR,
            "sources": {"type": "object", "additionalProperties": _STR},
            "modality": {"type": ["string", "null"]},
            "coordinate_system": {"const": "LPS"},
            "units": _obj(
                {
                    "volume": {"const": "ml"},
                    "length": {"const": "mm"},
                    "coordinates": {"const": "mm"},
                    "intensity": {"enum": ["HU", "a.u."]},
                }
            ),
            "image": _obj(
                {
                    "shape": {"type": "array", "items": _COUNT, "minItems": 3, "maxItems": 3},
                    "spacing_mm": _vec(3),
                    "orientation": _STR,
                }
            ),
            "structures": {"type": "array", "items": _STRUCTURE},
            "lesions": {"type": "array", "items": _LESION},
            "lesion_burden": {
                "type": "array",
                "items": _obj(
                    {"label": _COUNT, "name": _STR, "count": _COUNT, "total_volume_ml": _num()}
                ),
            },
            "change": {"anyOf": [_CHANGE, {"type": "null"}]},
            "flags": {"type": "array", "items": _FLAG},
            "summary": _STR,
            "custom_summary": {"type": ["string", "null"]},
        }
    ),
}
"""JSON Schema (draft 2020-12) of ``report.json``; every key is required, none is extra."""
