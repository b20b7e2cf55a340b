"""train_model end to end on a tiny nnU-Net dataset: plan, cache, folds, model folder, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medseg.errors import ConfigError
from medseg.train import ModelFolder, train_model
from medseg.train.splits import load_or_make_splits, make_splits

FAST = {"num_folds": 2, "training.iterations_per_epoch": 2, "training.val_iterations": 1}


@pytest.mark.slow
def test_train_model_end_to_end(tmp_path: Path, raw_dataset: Path) -> None:
    out = tmp_path / "model"
    progress = []
    result = train_model(
        raw_dataset,
        out,
        epochs=1,
        device="cpu",
        num_workers=1,
        overrides=FAST,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert progress[-1] == (2, 2)
    assert result.configuration == "3d"
    assert [f.fold for f in result.folds] == [0]
    model = ModelFolder.load(out)
    assert model.folds == [0]
    assert model.plan.num_folds == 2
    assert model.config.training.epochs == 1
    assert set(model.cv_metrics["dice"]) == {"ball", "core"}
    splits = json.loads((out / "splits_final.json").read_text())
    assert sorted(splits[0]["train"] + splits[0]["val"]) == ["s0", "s1", "s2", "s3"]
    assert (
        json.loads((out / "fold_0" / "val_metrics.json").read_text())["val_cases"]
        == splits[0]["val"]
    )
    for name in ("log.csv", "progress.png", "model.safetensors"):
        assert (out / "fold_0" / name).is_file()
    # a finished fold is skipped on a second call; "all" trains on every case
    again = train_model(raw_dataset, out, device="cpu", num_workers=0, folds=[0])
    assert again.folds[0].mean_dice == pytest.approx(result.folds[0].mean_dice)
    everything = train_model(raw_dataset, out, folds="all", device="cpu", num_workers=0)
    assert ModelFolder.load(out).folds == [-1, 0]
    assert everything.folds[0].path.name == "fold_all"
    all_metrics = json.loads((out / "fold_all" / "val_metrics.json").read_text())
    assert all_metrics["method"] == "pseudo-Dice on validation patches"
    assert "sliding window" in ModelFolder.load(out).val_metrics(0)["method"]


def test_bad_folds_are_config_errors(tmp_path: Path, raw_dataset: Path) -> None:
    with pytest.raises(ConfigError, match="fold 7 is not valid"):
        train_model(raw_dataset, tmp_path / "m", folds=[7], overrides=FAST)
    with pytest.raises(ConfigError, match="'all'"):
        train_model(raw_dataset, tmp_path / "m", folds="some", overrides=FAST)


def test_splits_follow_nnunet_and_are_reused(tmp_path: Path) -> None:
    ids = [f"case{i:02d}" for i in range(10)]
    splits = make_splits(reversed(ids), 5)
    vals = [s["val"] for s in splits]
    assert sorted(v for val in vals for v in val) == ids
    for split in splits:
        assert len(split["val"]) == 2
        assert sorted(split["train"] + split["val"]) == ids
    path = tmp_path / "splits_final.json"
    assert load_or_make_splits(path, ids, 5) == splits
    assert load_or_make_splits(path, ids, 5) == splits  # read back
    with pytest.raises(ConfigError, match="do not match"):
        load_or_make_splits(path, ids[:8], 5)
    with pytest.raises(ConfigError, match="cannot be split"):
        make_splits(ids[:3], 5)
