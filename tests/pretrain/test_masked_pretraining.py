"""Masked-image pretraining: masks as specified, the loss decreases, the weights load for
fine-tuning; the CLI writes the file ``medseg train --init`` reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medseg.errors import ConfigError, DatasetError
from medseg.io import Image, write_image
from medseg.plan import save_plan
from medseg.plan.plan import (
    ChannelNormalization,
    Configuration,
    NetworkConfig,
    Plan,
    TrainingConfig,
)
from medseg.pretrain import mask_blocks, pretrain_encoder
from medseg.train.finetune import encoder_parameter_names, load_initial_weights
from medseg.train.networks import build_network


def _plan(channels: int = 1) -> Plan:
    network = NetworkConfig(
        filters=(4, 8, 16),
        kernel_sizes=((3, 3, 3),) * 3,
        strides=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
        deep_supervision_heads=1,
    )
    config = Configuration(
        name="3d",
        spacing=(1.0, 1.0, 1.0),
        patch_size=(16, 16, 16),
        batch_size=2,
        network=network,
        training=TrainingConfig(mixed_precision="off"),
    )
    return Plan(
        dataset_name="Blobs",
        channel_names={i: f"ch{i}" for i in range(channels)},
        labels={"background": 0, "a": 1, "b": 2},
        num_classes=3,
        normalization=(ChannelNormalization(scheme="zscore"),) * channels,
        crop_to_nonzero=False,
        configurations={"3d": config},
        default_configuration="3d",
    )


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Three 20^3 volumes of smooth blobs (unlabelled), as NIfTI files."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    grid = np.indices((20, 20, 20)).astype(np.float32)
    for i in range(3):
        volume = np.zeros((20, 20, 20), np.float32)
        for _ in range(4):
            centre = rng.uniform(3, 17, size=3).reshape(3, 1, 1, 1)
            volume += np.exp(-((grid - centre) ** 2).sum(0) / rng.uniform(4, 16))
        volume += rng.normal(0, 0.02, volume.shape).astype(np.float32)
        write_image(
            Image(volume[None] * 100, (1.0,) * 3, (0.0,) * 3, np.eye(3)),
            folder / f"case{i}_0000.nii.gz",
        )
    return folder


def test_mask_blocks_masks_the_ratio_of_whole_blocks() -> None:
    patch = torch.zeros(3, 1, 16, 16, 12)
    mask = mask_blocks(patch, 0.6, (4, 4, 4), torch.Generator().manual_seed(0))
    assert mask.shape == (3, 1, 16, 16, 12)
    blocks = mask.view(3, 4, 4, 4, 4, 3, 4).permute(0, 1, 3, 5, 2, 4, 6).reshape(3, 48, 64)
    assert torch.all(blocks.all(-1) | ~blocks.any(-1))  # every block wholly in or out
    assert blocks.all(-1).sum(1).tolist() == [29, 29, 29]  # round(0.6 * 48)
    assert not torch.equal(mask[0], mask[1])
    again = mask_blocks(patch, 0.6, (4, 4, 4), torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)


def test_loss_decreases_and_weights_load_into_the_plans_network(
    images: Path, tmp_path: Path
) -> None:
    plan = _plan()
    out = tmp_path / "encoder.safetensors"
    result = pretrain_encoder(images, out, plan=plan, iterations=60, device="cpu", seed=1)
    assert result.iterations == 60
    assert np.mean(result.losses[-10:]) < 0.7 * np.mean(result.losses[:10])
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["images"] == 3
    assert info["loss_last_10"] < info["loss_first_10"]

    net = build_network(plan.configuration().network, 1, plan.num_classes, 3)
    report = load_initial_weights(net, out)
    assert encoder_parameter_names(net) <= set(report.loaded)
    assert report.missing == ()
    skipped = {name for name, _, _ in report.shape_mismatch}
    assert skipped
    assert all(n.startswith(("output_block", "deep_supervision_heads")) for n in skipped)


def test_encoder_only_and_bad_input(images: Path, tmp_path: Path) -> None:
    plan = _plan()
    out = tmp_path / "enc.safetensors"
    result = pretrain_encoder(images, out, plan=plan, iterations=2, encoder_only=True, device="cpu")
    net = build_network(plan.configuration().network, 1, 3, 3)
    report = load_initial_weights(net, out)
    assert set(report.loaded) == encoder_parameter_names(net)
    assert result.tensors == len(report.loaded)
    with pytest.raises(DatasetError, match="the plan expects 2"):
        pretrain_encoder(images, out, plan=_plan(channels=2), iterations=1, device="cpu")
    with pytest.raises(ConfigError, match="mask ratio"):
        pretrain_encoder(images, out, plan=plan, mask_ratio=1.0)
    with pytest.raises(ConfigError, match=r"\.safetensors"):
        pretrain_encoder(images, tmp_path / "enc.pt", plan=plan)


@pytest.mark.slow
def test_cli_writes_what_train_init_reads(images: Path, tmp_path: Path) -> None:
    from medseg.cli.main import app_typer

    save_plan(_plan(), tmp_path / "plan.json")
    out = tmp_path / "pre" / "enc.safetensors"
    args = ["pretrain", str(images), "-o", str(out), "--plan", str(tmp_path / "plan.json")]
    result = CliRunner().invoke(app_typer, [*args, "--iterations", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "--init" in result.output
    assert out.is_file()
