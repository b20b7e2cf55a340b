"""The model-folder lock: one training per folder; a dead training's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medseg.train.lock import LOCK_NAME, ModelFolderLockedError, lock_model_folder

HOLD = """
import sys, time
from medseg.train.lock import lock_model_folder
with lock_model_folder(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(folder: Path) -> subprocess.Popen:
    """A process that holds the lock on ``folder`` (started, and holding, on return)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_file_names_its_owner_and_goes_away(tmp_path: Path) -> None:
    with lock_model_folder(tmp_path / "model") as held:
        data = json.loads((tmp_path / "model" / LOCK_NAME).read_text())
        assert data["pid"] == os.getpid() == held.owner.pid
        assert data["host"] == socket.gethostname()
        assert held.taken_over is None
    assert not (tmp_path / "model" / LOCK_NAME).exists()


def test_second_lock_in_this_process_is_refused(tmp_path: Path) -> None:
    with (
        lock_model_folder(tmp_path),
        pytest.raises(ModelFolderLockedError) as info,
        lock_model_folder(tmp_path),
    ):
        pass
    assert f"pid {os.getpid()}" in str(info.value)
    assert "another training" in str(info.value)


def test_lock_held_by_another_process_is_refused(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        with (
            pytest.raises(ModelFolderLockedError, match=f"pid {proc.pid} on"),
            lock_model_folder(tmp_path),
        ):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_training_is_taken_over(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up: the lock file stays behind
    proc.wait()
    assert (tmp_path / LOCK_NAME).exists()
    with lock_model_folder(tmp_path) as held:
        assert held.taken_over is not None
        assert held.taken_over.pid == proc.pid
        assert held.owner.pid == os.getpid()


def test_corrupt_lock_file_is_taken_over_silently(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("{not json")
    with lock_model_folder(tmp_path) as held:
        assert held.taken_over is None


def _tiny_dataset(root: Path) -> Path:
    from medseg.data import write_dataset_json
    from medseg.io import Image, write_image

    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(2):
        image = np.zeros((10, 10, 10), np.float32)
        image[2:8, 2:8, 2:8] = 50.0 + i
        label = (image > 0).astype(np.uint8)
        write_image(Image.from_array(image[None]), root / "imagesTr" / f"c{i}_0000.nii.gz")
        write_image(Image.from_array(label[None]), root / "labelsTr" / f"c{i}.nii.gz")
    write_dataset_json(
        root,
        channel_names={0: "CT"},
        labels={"background": 0, "organ": 1},
        num_training=2,
        file_ending=".nii.gz",
    )
    return root


def test_second_train_command_exits_with_one_line(tmp_path, monkeypatch, capsys) -> None:
    from medseg.cli.main import app

    dataset = _tiny_dataset(tmp_path / "Dataset003_Tiny")
    model = tmp_path / "model"
    argv = ["medseg", "train", str(dataset), "-o", str(model), "--epochs", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    started = time.monotonic()
    with lock_model_folder(model), pytest.raises(SystemExit) as info:
        app()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert info.value.code == 1
    assert len(err) == 1
    assert "another training is writing this model folder" in err[0]
    assert str(model) in err[0]
    assert not (model / "plan.json").exists()
    assert time.monotonic() - started < 60  # refused at once, not after a training


def test_train_command_reports_a_stale_lock(tmp_path, capsys) -> None:
    from rich.console import Console

    from medseg.cli.train_commands import _model_folder_lock

    stale = {"pid": 999999999, "host": socket.gethostname(), "started": "2026-01-01T00:00:00"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(stale))
    with _model_folder_lock(tmp_path, Console(stderr=True, soft_wrap=True)):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert "took over the lock" in err
    assert "pid 999999999" in err
