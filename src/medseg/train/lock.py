"""A lock on a model folder while a training writes it, so that two trainings never share one.

The lock is ``MODEL/train.lock``: a JSON file naming its owner (pid, host, start time), held
with an exclusive ``flock`` for as long as the training runs. The operating system drops the
``flock`` when its process ends however it ends (even ``kill -9``), so a lock file whose
``flock`` is free is stale: the next training takes it over and says whose it was. A training
that finds the ``flock`` held stops at once with :class:`ModelFolderLockedError`. The file is
removed when the training ends. POSIX systems only (``fcntl``); the lock works on local
file systems and on NFS v4 (where Linux maps ``flock`` to byte-range locks).

Usage::

    with lock_model_folder("models/brain") as held:
        train_model("Dataset001_Brain", "models/brain")
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from medseg._typing import PathLikeStr
from medseg.errors import MedsegError

logger = logging.getLogger(__name__)

LOCK_NAME = "train.lock"


class ModelFolderLockedError(MedsegError):
    """Another training holds the model folder."""


@dataclass(frozen=True, kw_only=True)
class LockOwner:
    """Who holds (or held) a model folder lock."""

    pid: int
    host: str
    started: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"


@dataclass(frozen=True, kw_only=True)
class HeldLock:
    """A lock this process holds: its own entry, and the stale entry it replaced, if any."""

    owner: LockOwner
    taken_over: LockOwner | None = None


@contextmanager
def lock_model_folder(model_dir: PathLikeStr) -> Iterator[HeldLock]:
    """Hold ``model_dir/train.lock`` for the duration of the block (the folder is created).

    Parameters
    ----------
    model_dir : path
        The model folder a training writes.

    Yields
    ------
    HeldLock
        This process's entry in the lock file, and the stale one it took over (a training that
        died without removing its lock), which callers should report.

    Raises
    ------
    ModelFolderLockedError
        Another process holds the lock; the message names its pid and host.
    """
    folder = Path(model_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MedsegError(f"{folder}: cannot create the model folder ({err.strerror})") from err
    path = folder / LOCK_NAME
    fd, held = _acquire(path)
    try:
        yield held
    finally:
        path.unlink(missing_ok=True)  # while still holding the flock: no one holds a dead inode
        os.close(fd)


def _acquire(path: Path) -> tuple[int, HeldLock]:
    """Open, ``flock`` and fill ``path``; retried when another process unlinked it meanwhile."""
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_owner(fd)
            os.close(fd)
            who = holder.describe() if holder else "a process that is starting"
            raise ModelFolderLockedError(
                f"{path.parent}: another training is writing this model folder ({who}); "
                f"wait for it to finish, or train into another folder with -o"
            ) from None
        if not _same_file(fd, path):  # the holder removed the file between our open and flock
            os.close(fd)
            continue
        stale = _read_owner(fd)
        if stale is not None:
            logger.info(
                "%s: taking over a stale lock of %s, which is no longer running",
                path,
                stale.describe(),
            )
        owner = LockOwner(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner.__dict__).encode(), 0)
        return fd, HeldLock(owner=owner, taken_over=stale)
    raise ModelFolderLockedError(
        f"{path}: the lock file keeps changing; is another training starting?"
    )


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _read_owner(fd: int) -> LockOwner | None:
    """The owner written in the lock file, or ``None`` for an empty or unreadable one."""
    raw = os.pread(fd, 4096, 0)
    try:
        data = json.loads(raw.decode())
        return LockOwner(pid=int(data["pid"]), host=str(data["host"]), started=str(data["started"]))
    except (ValueError, KeyError, TypeError):
        return None
