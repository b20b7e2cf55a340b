"""DDP training: 2 CPU ranks with gloo under torchrun; identical weights, one writer, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from scale_fixtures import training_plan, write_raw_dataset

from medseg.plan.plan import save_plan
from medseg.scale.ddp import RankStream
from medseg.train.checkpoint import load_checkpoint
from medseg.train.loader import BatchStream
from medseg.train.model_folder import ModelFolder, fold_dir
from medseg.train.networks import build_network
from medseg.train.sampling import PatchSampler

WORKER = Path(__file__).with_name("ddp_worker.py")


def _torchrun(*args: str, logdir: Path) -> list[dict]:
    logdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", str(WORKER), *args, str(logdir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-12000:]
    return [json.loads((logdir / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_two_gloo_ranks_stay_identical_rank0_writes_and_resume(tmp_path):
    dataset = write_raw_dataset(tmp_path / "Dataset001_Spheres")
    plan_path = tmp_path / "plan.json"
    # a CPU plan carries a time budget; under DDP it must still train by epochs (a budget would
    # stop ranks at different iterations), so 1 ms of budget changes nothing below
    save_plan(training_plan(epochs=2, iterations=2, time_budget_s=0.001), plan_path)
    model = tmp_path / "model"
    args = (str(dataset), str(model), str(plan_path))

    first = _torchrun(*args, "--stop-after-epoch", "1", logdir=tmp_path / "run1")
    assert first[0]["world"] == 2
    assert first[0]["iterations"] == [1, 2]
    assert first[0]["digests"] == first[1]["digests"]  # identical weights after every step
    assert len(set(first[0]["digests"])) == 2  # and the steps did change them
    assert first[0]["saved"] == [1]
    assert first[1]["saved"] == []  # rank 1 never wrote a checkpoint
    checkpoint_dir = fold_dir(model, 0)
    assert not (checkpoint_dir / "model.safetensors").exists()
    # the checkpoint is the single-process format: one process can load it
    config = training_plan().configuration()
    net = build_network(config.network, in_channels=1, out_channels=3, ndim=3)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    state = load_checkpoint(checkpoint_dir, net, optimizer)
    assert state["epoch"] == 1

    second = _torchrun(*args, logdir=tmp_path / "run2")
    assert second[0]["iterations"] == [3, 4]  # resumed after epoch 1
    assert second[0]["digests"] == second[1]["digests"]
    assert second[0]["saved"] == [2]
    assert second[1]["saved"] == []
    folder = ModelFolder.load(model)
    assert folder.folds == [0]
    log = (checkpoint_dir / "log.csv").read_text().strip().splitlines()
    assert len(log) == 3  # header + both epochs, epoch 1 carried over from the checkpoint


def test_rank_streams_split_the_global_batch_and_its_oversampling():
    class Source:
        case_ids = ("a",)

        def load(self, case_id, mmap=True):
            import numpy as np

            return np.zeros((1, 8, 8, 8), np.float32), np.zeros((1, 8, 8, 8), np.int16), {}

        def foreground_locations(self, case_id):
            return {}

    sampler = PatchSampler(Source(), ["a"], (4, 4, 4), 4, 0.5, foreground_labels=[1])
    stream = BatchStream(sampler, None, seed=7, start=3)
    ranks = [RankStream(stream, rank=r, world=2) for r in (0, 1)]
    assert [r.sampler.batch_size for r in ranks] == [2, 2]
    assert [r.sampler.n_forced for r in ranks] == [0, 2]  # the last 2 of the global 4
    assert sampler.batch_size == 4  # the original is untouched
    assert [r.start for r in ranks] == [3, 3]
    image0, _ = ranks[0].batch(5)
    image_same, _ = BatchStream(ranks[0].sampler, None, seed=7).batch(10)  # 5 * 2 + 0
    assert torch.equal(image0, image_same)


def test_ddp_outside_torchrun_is_one_clear_error(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medseg.cli.main import app_typer

    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    args = ["train", str(tmp_path / "data"), "-o", str(tmp_path / "model"), "--ddp"]
    result = CliRunner().invoke(app_typer, args)
    assert result.exit_code != 0
    assert "not started by torchrun" in str(result.exception)
    assert not (tmp_path / "model").exists()
