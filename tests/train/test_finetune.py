"""Fine-tuning: matching tensors are loaded (shape-checked, reported), the encoder's rate scaled."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from medseg.errors import ConfigError, ModelFormatError
from medseg.plan import apply_overrides
from medseg.plan.plan import NetworkConfig, TrainingConfig
from medseg.train.finetune import (
    encoder_parameter_names,
    load_initial_weights,
    parameter_groups,
    resolve_init_file,
    set_learning_rate,
)
from medseg.train.networks import build_network
from medseg.train.trainer import build_optimizer


def _net(out_channels: int = 3, architecture: str = "dynunet", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = NetworkConfig(
        architecture=architecture,
        filters=(4, 8, 16),
        kernel_sizes=((3, 3, 3),) * 3,
        strides=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
        deep_supervision_heads=1,
    )
    return build_network(config, 1, out_channels, 3)


def _save(net: torch.nn.Module, path: Path, keep=lambda name: True) -> Path:
    save_file({k: v.contiguous() for k, v in net.state_dict().items() if keep(k)}, str(path))
    return path


def test_same_network_loads_everything(tmp_path: Path) -> None:
    source = _net(seed=1)
    target = _net(seed=2)
    report = load_initial_weights(target, _save(source, tmp_path / "w.safetensors"))
    assert set(report.loaded) == set(source.state_dict())
    assert report.missing == report.unused == report.shape_mismatch == ()
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name


def test_other_class_count_skips_the_output_layers(tmp_path: Path) -> None:
    source = _net(out_channels=5, seed=1)
    target = _net(out_channels=3, seed=2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = load_initial_weights(target, _save(source, tmp_path / "w.safetensors"))
    skipped = {name for name, _, _ in report.shape_mismatch}
    assert skipped
    assert all(shape[0] == 5 for _, shape, _ in report.shape_mismatch)
    assert skipped.isdisjoint(report.loaded)
    for name in skipped:
        assert torch.equal(target.state_dict()[name], before[name])
    encoder = {n for n in source.state_dict() if n.startswith(("input_block", "downsamples"))}
    assert encoder <= set(report.loaded)


def test_encoder_only_file_leaves_the_decoder(tmp_path: Path) -> None:
    source = _net(seed=1)
    encoder = encoder_parameter_names(source)
    path = _save(source, tmp_path / "encoder.safetensors", keep=lambda n: n in encoder)
    report = load_initial_weights(_net(seed=2), path)
    assert set(report.loaded) == encoder
    assert any(name.startswith("upsamples") for name in report.missing)
    assert not any(name.startswith("upsamples") for name in encoder)


def test_bad_sources_give_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no weights to start from"):
        resolve_init_file(tmp_path / "absent")
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelFormatError, match="not a readable safetensors"):
        load_initial_weights(_net(), tmp_path / "bad.safetensors")
    save_file({"other.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelFormatError, match="none of its 1 tensors"):
        load_initial_weights(_net(), tmp_path / "other.safetensors")


def test_model_folder_resolves_to_fold_all_else_the_lowest_fold(tmp_path: Path) -> None:
    for fold in ("fold_10", "fold_2"):
        (tmp_path / fold).mkdir()
        (tmp_path / fold / "model.safetensors").write_bytes(b"")
    assert resolve_init_file(tmp_path) == tmp_path / "fold_2" / "model.safetensors"
    assert resolve_init_file(tmp_path / "fold_10") == tmp_path / "fold_10" / "model.safetensors"
    (tmp_path / "fold_all").mkdir()
    (tmp_path / "fold_all" / "model.safetensors").write_bytes(b"")
    assert resolve_init_file(tmp_path) == tmp_path / "fold_all" / "model.safetensors"


def test_encoder_learning_rate_is_scaled(plan) -> None:
    """AdamW's first step moves each weight by about lr (its update is lr * g / |g|)."""
    net = _net()
    tc = TrainingConfig(optimizer="adamw", weight_decay=0.0, encoder_lr_scale=0.1)
    optimizer = build_optimizer(net, tc)
    set_learning_rate(optimizer, 1e-3)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-3, 1e-4])
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    outputs = net(torch.randn(2, 1, 16, 16, 16))
    sum(o.square().mean() for o in outputs).backward()
    optimizer.step()
    encoder = encoder_parameter_names(net)
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in net.named_parameters()}
    assert max(moved[n] for n in encoder) == pytest.approx(1e-4, rel=0.05)
    assert max(v for n, v in moved.items() if n not in encoder) == pytest.approx(1e-3, rel=0.05)
    groups = parameter_groups(net, tc)
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    assert len(parameter_groups(net, TrainingConfig())) == 1
    with pytest.raises(ConfigError, match="does not name its encoder"):
        parameter_groups(_net(architecture="attention_unet"), tc)
    with pytest.raises(ConfigError, match="encoder_lr_scale must be > 0"):
        apply_overrides(plan, {"training.encoder_lr_scale": 0})


@pytest.mark.slow
def test_train_fold_starts_from_a_trained_model(tmp_path: Path, source, plan) -> None:
    from medseg.train.model_folder import save_model_folder
    from medseg.train.trainer import train_fold

    ids = list(source.case_ids)
    kwargs = {"train_ids": ids[:3], "val_ids": ids[3:], "device": "cpu", "seed": 3}
    save_model_folder(tmp_path / "first", plan, configuration="3d")
    train_fold(source, plan, "3d", tmp_path / "first", 0, final_validation=False, **kwargs)
    config = plan.configuration()
    tuned = plan.with_configuration(
        replace(config, training=replace(config.training, encoder_lr_scale=0.1))
    )
    save_model_folder(tmp_path / "second", tuned, configuration="3d")
    result = train_fold(
        source, tuned, "3d", tmp_path / "second", 0, init=tmp_path / "first", **kwargs
    )
    report = json.loads((result.path / "init_report.json").read_text())
    assert report["source"] == str(tmp_path / "first" / "fold_0" / "model.safetensors")
    assert report["missing"] == []
    assert len(report["loaded"]) == len(_net().state_dict())
