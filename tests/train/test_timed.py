"""Time-budgeted training: stops on the clock, validates whole cases rarely, keeps the best."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from medseg.train import timed
from medseg.train.model_folder import save_model_folder
from medseg.train.trainer import train_fold


def _timed_plan(plan, **changes):
    config = plan.configuration()
    settings = {"time_budget_s": 2.0, "case_validations": 3, "warmup_fraction": 0.1, **changes}
    training = dataclasses.replace(config.training, **settings)
    return plan.with_configuration(dataclasses.replace(config, training=training))


def _bare_run(net, step, plan, val_ids, path: Path) -> timed.TimedRun:
    """A timed run of ``step`` on ``net`` (SGD) with constant batches and no real source."""
    import itertools

    return timed.TimedRun(
        net=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        step=step,
        batches=itertools.repeat((torch.zeros(1, 2), torch.zeros(1, 2))),
        plan=plan,
        config_name=plan.default_configuration,
        source=None,
        val_ids=val_ids,
        device=torch.device("cpu"),
        dtype=None,
        path=path,
        checkpoint_state={},
        title="t",
    )


def _train(source, plan, out: Path):
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
    )


def test_timed_run_validates_three_times_and_keeps_the_best(
    tmp_path: Path, source, plan, monkeypatch
) -> None:
    scores = iter([0.9, 0.2, 0.1])  # the first validation is the best
    snapshots = []
    real = timed.validate_cases

    def fake_validate(net, *args, **kwargs):
        if snapshots:  # weights always differ from the previous validation's
            with torch.no_grad():
                for param in net.parameters():
                    param.add_(1.0)
        per_case = real(net, *args, **kwargs)
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        score = next(scores)
        return {case: {name: score for name in dice} for case, dice in per_case.items()}

    monkeypatch.setattr(timed, "validate_cases", fake_validate)
    result = _train(source, _timed_plan(plan), tmp_path)
    # 3 planned; the middle one is skipped when the time left is less than one validation
    assert 2 <= len(snapshots) <= 3
    saved = load_file(str(tmp_path / "fold_0" / "model.safetensors"))
    for key, value in snapshots[0].items():
        assert torch.equal(saved[key], value), key
    assert not torch.equal(saved["output_block.conv.conv.weight"], snapshots[-1][
        "output_block.conv.conv.weight"
    ])  # fmt: skip
    metrics = json.loads((tmp_path / "fold_0" / "val_metrics.json").read_text())
    assert metrics["validations"] == len(snapshots)
    assert metrics["iterations"] > 0
    assert metrics["dice"] == {"ball": 0.9, "core": 0.9}
    assert metrics["selected_at_seconds"] <= metrics["train_seconds"]
    assert result.val_dice == {"ball": 0.9, "core": 0.9}
    rows = list(csv.DictReader((tmp_path / "fold_0" / "log.csv").open()))
    elapsed = [float(r["elapsed_s"]) for r in rows]
    assert elapsed == sorted(elapsed)
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[-1] < plan.configuration().training.learning_rate
    assert not (tmp_path / "fold_0" / timed.BEST_WEIGHTS).exists()
    assert not list((tmp_path / "fold_0").glob("checkpoint_e*"))


def test_spread_picks_evenly() -> None:
    assert timed._spread(["d", "a", "c", "b"], 10) == ["a", "b", "c", "d"]
    assert timed._spread([f"c{i}" for i in range(9)], 3) == ["c0", "c4", "c8"]


def test_costly_validations_are_capped_to_a_share_of_the_budget(
    tmp_path: Path, source, plan, monkeypatch
) -> None:
    calls = []

    def slow_validate(net, source, case_ids, *args, **kwargs):
        calls.append(time.perf_counter())
        time.sleep(0.3)  # 7.5 % of the 4 s budget, as a loaded CPU's brain validation
        return {case: {"ball": 0.5, "core": 0.5} for case in case_ids}

    monkeypatch.setattr(timed, "validate_cases", slow_validate)
    _train(source, _timed_plan(plan, time_budget_s=4.0), tmp_path)
    # 3 planned: at 50 % (0.3 s spent), 75 % (would make 0.6 s > 10 % of 4 s: skipped), final
    assert len(calls) == 2
    metrics = json.loads((tmp_path / "fold_0" / "val_metrics.json").read_text())
    assert metrics["validations"] == 2
    assert metrics["validation_seconds"] >= 0.6


def test_slow_iterations_stop_nearest_the_budget(tmp_path: Path, plan) -> None:
    net = torch.nn.Linear(2, 2)

    def slow_step(image, label) -> float:
        time.sleep(0.6)  # iterations start at 0, 0.6, 1.2; a 4th would end at 2.4 s
        return 1.0

    run = _bare_run(net, slow_step, _timed_plan(plan, case_validations=0), [], tmp_path)
    state = timed.train_for_time(run, timed.TimedState())
    assert state.iterations == 3
    assert 1.8 <= state.elapsed_s <= 2.0 + 0.3


def test_weight_ema_is_what_validation_sees_and_the_run_keeps(tmp_path: Path, plan, monkeypatch):
    net = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.zero_()

    def step(image, label) -> float:  # iterate k leaves every weight at k
        with torch.no_grad():
            net.weight.add_(1.0)
        time.sleep(0.02)
        return 1.0

    seen = []

    def fake_validate(model, source, case_ids, *args, **kwargs):
        seen.append((model is net, model.weight.detach().clone()))
        return {"case": {"ball": 0.5, "core": 0.5}}

    monkeypatch.setattr(timed, "validate_cases", fake_validate)
    decay = 0.8
    changes = {"time_budget_s": 0.5, "case_validations": 1, "weight_ema": decay}
    run = _bare_run(net, step, _timed_plan(plan, **changes), ["case"], tmp_path)
    state = timed.train_for_time(run, timed.TimedState())
    average = 1.0  # the first update copies the weights; then average <- d average + (1-d) w
    for k in range(2, state.iterations + 1):
        average = decay * average + (1 - decay) * k
    assert state.iterations >= 5
    assert len(seen) == 1
    assert not seen[0][0]  # validation saw the average, not the trained net
    assert torch.allclose(seen[0][1], torch.full((2, 2), average))
    assert torch.allclose(net.weight, torch.full((2, 2), average))  # and the run kept it
    assert average < state.iterations - 1  # an average, not the last iterate


def test_best_validation_labels_are_saved_for_post_processing(tmp_path: Path, source, plan):
    from medseg.train.validation import VALIDATION_LABELS

    _train(source, _timed_plan(plan, case_validations=1), tmp_path)
    val_ids = list(source.case_ids)[3:]
    with np.load(tmp_path / "fold_0" / VALIDATION_LABELS) as saved:
        assert sorted(saved.files) == sorted(
            f"{kind}:{case}" for case in val_ids for kind in ("pred", "ref", "voxel_ratio")
        )
        for case in val_ids:
            _, label, _ = source.load(case)
            assert saved[f"pred:{case}"].shape == label.shape[1:]
            assert np.array_equal(saved[f"ref:{case}"], label[0])
            assert set(np.unique(saved[f"pred:{case}"])) <= set(range(plan.num_classes))
