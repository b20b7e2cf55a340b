"""Atomic writes: the old file survives a failed write, the new one gets normal permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from medseg._atomic import atomic_path, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    write_text_atomic("old", target)

    def write_half() -> None:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_half()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_files_written_0600_get_the_permissions_of_a_plain_file(tmp_path: Path) -> None:
    target = tmp_path / "weights.bin"
    with atomic_path(target) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)  # as safetensors creates files
        os.close(fd)
    plain = tmp_path / "plain"
    plain.touch()
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
