"""Atomic file writes: write beside the target, then rename, so nothing already written is lost.

A crash or a full disk mid-write leaves the old file (or none), never half a file. Every
writer in medseg goes through :func:`atomic_path`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``.

    The temporary file is removed if the block fails. The result gets the permissions of a
    plainly created file (0666 minus the umask): some writers (safetensors) create 0600 files,
    which other users of a shared model folder could not read.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{uuid4().hex}-{path.name}")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(text: str, path: Path) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
