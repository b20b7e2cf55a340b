"""The batch manifest: which cases of a prediction job are done, which failed and why.

``{out}/manifest.json``::

    {
      "format": 1,
      "settings": {...},           # model, folds, TTA, step, runtime, optional outputs
      "cases": {
        "case_a": {"status": "done", "labels": "case_a.nii.gz", "inputs": [...],
                   "seconds": 3.1, "worker": "host:pid", "finished": "2026-...Z"},
        "case_b": {"status": "failed", "message": "case_b.nii.gz: not a NIfTI file ...",
                   "inputs": [...], "worker": "host:pid", "finished": "..."}
      }
    }

A case counts as done only if its entry says so, its label map still exists and the job's
settings equal the manifest's (different settings make every earlier output stale). Only the
job's driver writes the manifest, atomically, so a crash leaves the previous version.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medseg._atomic import write_text_atomic
from medseg.errors import ConfigError

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


@dataclass
class Manifest:
    """A job's manifest in memory; :meth:`save` writes it (at most every ``interval`` seconds).

    ``cases`` maps a case ID to its entry (see the module docstring); ``settings`` is a JSON
    object describing what produced the outputs.
    """

    path: Path
    settings: dict[str, Any]
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    interval: float = 5.0
    _last_save: float = field(default=0.0, repr=False)

    @classmethod
    def open(cls, out_dir: Path, settings: dict[str, Any]) -> Manifest:
        """Load ``out_dir/manifest.json`` if it exists and was written with ``settings``.

        Raises
        ------
        ConfigError
            The file exists but is not a medseg manifest.
        """
        path = Path(out_dir) / MANIFEST_NAME
        manifest = cls(path=path, settings=settings)
        if not path.is_file():
            return manifest
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(
                f"{path}: not valid JSON ({err}); delete it to predict every case again"
            ) from err
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ConfigError(f"{path}: not a medseg manifest (format {MANIFEST_FORMAT})")
        if data.get("settings") != json.loads(json.dumps(settings)):
            logger.warning("%s: written with other settings; predicting every case again", path)
            return manifest
        manifest.cases = dict(data.get("cases", {}))
        return manifest

    def is_done(self, case_id: str) -> bool:
        """True if ``case_id`` finished earlier and its label map is still there."""
        entry = self.cases.get(case_id)
        return bool(
            entry
            and entry.get("status") == "done"
            and (self.path.parent / entry.get("labels", "")).is_file()
        )

    def record(self, case_id: str, entry: dict[str, Any]) -> None:
        """Set a case's entry (``status`` ``"done"`` or ``"failed"``) and save if due."""
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.cases[case_id] = {**entry, "finished": stamp}
        if time.monotonic() - self._last_save >= self.interval:
            self.save()

    def save(self) -> None:
        """Write the manifest atomically."""
        data = {"format": MANIFEST_FORMAT, "settings": self.settings, "cases": self.cases}
        write_text_atomic(json.dumps(data, indent=2, sort_keys=True) + "\n", self.path)
        self._last_save = time.monotonic()
