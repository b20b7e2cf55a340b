"""The batch manifest: what counts as done, stale settings, a damaged file."""

from __future__ import annotations

import pytest

from medseg.errors import ConfigError
from medseg.scale.manifest import Manifest

SETTINGS = {"model": "/m", "folds": [0], "tta": True}


def test_done_needs_status_label_file_and_same_settings(tmp_path):
    manifest = Manifest.open(tmp_path, SETTINGS)
    (tmp_path / "a.nii.gz").write_bytes(b"x")
    manifest.record("a", {"status": "done", "labels": "a.nii.gz"})
    manifest.record("b", {"status": "done", "labels": "b.nii.gz"})  # file never written
    manifest.record("c", {"status": "failed", "message": "unreadable"})
    manifest.save()

    again = Manifest.open(tmp_path, SETTINGS)
    assert [again.is_done(c) for c in "abcd"] == [True, False, False, False]
    assert again.cases["c"]["message"] == "unreadable"
    assert again.cases["a"]["finished"].endswith("Z")

    other = Manifest.open(tmp_path, {**SETTINGS, "tta": False})
    assert not other.is_done("a")  # outputs of other settings are stale


def test_damaged_manifest_is_one_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="delete it"):
        Manifest.open(tmp_path, SETTINGS)
    (tmp_path / "manifest.json").write_text('{"format": 99}')
    with pytest.raises(ConfigError, match="not a medseg manifest"):
        Manifest.open(tmp_path, SETTINGS)
