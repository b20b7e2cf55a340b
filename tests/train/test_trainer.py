"""Trainer: determinism, resume after a kill, logs, region and ignore-label training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medseg.errors import ConfigError
from medseg.train.checkpoint import load_checkpoint, save_checkpoint
from medseg.train.model_folder import ModelFolder, save_model_folder
from medseg.train.trainer import autocast_dtype, poly_lr, train_fold


class Killed(Exception):
    """Stands in for a kill in the middle of epoch 2."""


def _train(source, plan, out: Path, **kwargs):
    save_model_folder(out, plan, configuration=plan.default_configuration)
    ids = list(source.case_ids)
    return train_fold(
        source,
        plan,
        plan.default_configuration,
        out,
        0,
        train_ids=ids[:3],
        val_ids=ids[3:],
        device="cpu",
        seed=3,
        **kwargs,
    )


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "fold_0" / "model.safetensors"))


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_deterministic_and_resumable(tmp_path: Path, source, plan) -> None:
    result = _train(source, plan, tmp_path / "a")
    _train(source, plan, tmp_path / "b")
    reference = _weights(tmp_path / "a")
    _assert_same(reference, _weights(tmp_path / "b"))

    def kill_in_epoch_2(done: int, total: int) -> None:
        if done == 3:
            raise Killed

    with pytest.raises(Killed):
        _train(source, plan, tmp_path / "c", on_progress=kill_in_epoch_2)
    assert (tmp_path / "c" / "fold_0" / "checkpoint_e1" / "weights.safetensors").is_file()
    assert not (tmp_path / "c" / "fold_0" / "model.safetensors").exists()
    seen = []
    _train(source, plan, tmp_path / "c", on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(3, 4), (4, 4)]  # only epoch 2 was trained again
    _assert_same(reference, _weights(tmp_path / "c"))
    assert not list((tmp_path / "c" / "fold_0").glob("checkpoint*"))

    fold = tmp_path / "a" / "fold_0"
    rows = list(csv.DictReader((fold / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "val_loss", "lr", "dice_ball", "dice_core", "mean_dice"} <= set(rows[0])
    assert float(rows[1]["lr"]) == pytest.approx(poly_lr(1e-2, 1, 2))
    assert (fold / "progress.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((fold / "val_metrics.json").read_text())
    assert set(metrics["dice"]) == {"ball", "core"}
    assert list(metrics["per_case"]) == ["case3"]
    assert result.val_dice == pytest.approx(metrics["dice"], nan_ok=True)
    assert np.isfinite(result.train_loss)
    assert ModelFolder.load(tmp_path / "a").folds == [0]


def test_resume_refuses_a_different_schedule(tmp_path: Path, source, tiny_plan) -> None:
    def kill(done: int, total: int) -> None:
        if done == 3:
            raise Killed

    with pytest.raises(Killed):
        _train(source, tiny_plan(), tmp_path, on_progress=kill)
    with pytest.raises(ConfigError, match="checkpoint was made for 2 epochs"):
        _train(source, tiny_plan(epochs=3), tmp_path)


def test_region_and_ignore_training_runs(tmp_path: Path, source, tiny_plan, array_source) -> None:
    regions = {"whole": (1, 2), "core": (2,)}
    result = _train(source, tiny_plan(epochs=1, regions=regions), tmp_path / "r")
    assert set(result.val_dice) == {"whole", "core"}
    assert np.isfinite(result.train_loss)
    cases = {}
    for case_id in source.case_ids:
        image, label, _ = source.load(case_id)
        label = label.copy()
        label[:, :3] = 3  # ignore some slices
        cases[case_id] = (image, label)
    ignored = _train(array_source(cases), tiny_plan(epochs=1, ignore=3), tmp_path / "i")
    assert np.isfinite(ignored.train_loss)


def test_2d_training(tmp_path: Path, source, tiny_plan) -> None:
    result = _train(source, tiny_plan(ndim=2, epochs=1, mirror=(0, 1)), tmp_path)
    assert np.isfinite(result.train_loss)
    net = ModelFolder.load(tmp_path).build_network(0)
    assert net(torch.zeros(1, 1, 16, 16)).shape == (1, 3, 16, 16)


def test_optimizer_checkpoint_round_trip(tmp_path: Path) -> None:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, net, opt, {"epoch": 1, "rows": []})
    net2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.SGD(net2.parameters(), lr=0.5, momentum=0.1)
    state = load_checkpoint(tmp_path, net2, opt2)
    assert state == {"epoch": 1, "rows": []}
    assert torch.equal(net2.weight, net.weight)
    assert opt2.param_groups[0]["lr"] == 0.1
    assert opt2.param_groups[0]["nesterov"] is True
    for p, p2 in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(opt.state[p]["momentum_buffer"], opt2.state[p2]["momentum_buffer"])
    assert load_checkpoint(tmp_path / "none", net2, opt2) is None


def test_precision_policy_is_conservative_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("off", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    expected = torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else None
    assert autocast_dtype("auto", cpu) == expected


def test_bf16_autocast_gives_finite_loss(tmp_path: Path, source, tiny_plan) -> None:
    import dataclasses

    plan = tiny_plan(epochs=1)
    config = plan.configuration()
    training = dataclasses.replace(config.training, mixed_precision="bf16")
    plan = plan.with_configuration(dataclasses.replace(config, training=training))
    assert np.isfinite(_train(source, plan, tmp_path).train_loss)
