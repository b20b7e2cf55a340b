"""Every registered network on tiny 2D and 3D inputs: shapes, gradients, presets, clear errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from monai.networks.blocks.dynunet_block import UnetResBlock
from monai.networks.nets import UNETR

from medseg.errors import ConfigError
from medseg.plan.overrides import apply_overrides
from medseg.plan.plan import NetworkConfig
from medseg.train.model_folder import ModelFolder, save_model_folder
from medseg.train.network_zoo import RESENC_BLOCKS, BottleneckTransformer
from medseg.train.networks import available_networks, build_network, output_list
from medseg.train.trainer import train_fold

ARCHITECTURES = ("dynunet", "unet", "resenc_unet", "hybrid_unet", "attention_unet", "unetr")
DEEP_SUPERVISED = {"dynunet", "resenc_unet", "hybrid_unet"}


def _config(ndim: int, **kwargs) -> NetworkConfig:
    """Four stages, the last one not pooling the last axis (as a planned anisotropic patch)."""
    last = (2,) * (ndim - 1) + (1,)
    return NetworkConfig(
        filters=(4, 8, 16, 32),
        kernel_sizes=((3,) * ndim,) * 4,
        strides=((1,) * ndim, (2,) * ndim, (2,) * ndim, last),
        deep_supervision_heads=2,
        **kwargs,
    )


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_network_trains_on_a_tiny_patch(name: str, ndim: int) -> None:
    patch = (32, 32) if ndim == 2 else (16, 32, 16)
    torch.manual_seed(0)
    size = "S" if name == "unetr" else None  # ViT-S: the smallest UNETR keeps the test fast
    cfg = _config(ndim, architecture=name, size=size)
    net = build_network(cfg, 2, 3, ndim, patch_size=patch)
    outputs = output_list(net(torch.randn(2, 2, *patch)), ndim)
    assert outputs[0].shape == (2, 3, *patch)
    if name in DEEP_SUPERVISED:
        # heads at 1/2 and 1/4 of the resolution (the plan's strides), at their native size
        assert [o.shape[2:] for o in outputs[1:]] == [
            torch.Size(s // 2 for s in patch),
            torch.Size(s // 4 for s in patch),
        ]
    else:
        assert len(outputs) == 1
    sum(o.square().mean() for o in outputs).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 2, *patch)).shape == (1, 3, *patch)


def test_new_architectures_are_registered() -> None:
    assert set(ARCHITECTURES) | {"swinunetr"} <= set(available_networks())


def test_swinunetr_checks_the_patch() -> None:
    cfg = dataclasses.replace(_config(2), architecture="swinunetr")
    net = build_network(cfg, 1, 2, 2, patch_size=(32, 64)).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 32, 64)).shape == (1, 2, 32, 64)
    with pytest.raises(ConfigError, match=r"multiple of 32.*patch_size=\[64, 96\]"):
        build_network(cfg, 1, 2, 2, patch_size=(64, 80))


def test_width_presets_scale_filters() -> None:
    sizes = {}
    for size in ("S", "B", "L"):
        net = build_network(_config(3, size=size), 1, 2, 3)
        first = net.input_block.conv1.conv
        sizes[size] = (first.out_channels, _params(net))
    assert [sizes[s][0] for s in "SBL"] == [2, 4, 8]
    # doubling every width roughly quadruples the convolution weights
    assert 3 < sizes["L"][1] / sizes["B"][1] < 4.5
    assert sizes["B"][1] == _params(build_network(_config(3), 1, 2, 3))


def test_resenc_blocks_per_stage_follow_nnunet() -> None:
    net = build_network(_config(3, architecture="resenc_unet"), 1, 2, 3)
    stages = [net.input_block, *net.downsamples, net.bottleneck]
    counts = [sum(isinstance(m, UnetResBlock) for m in stage.modules()) for stage in stages]
    assert counts == list(RESENC_BLOCKS[:4]) == [1, 3, 4, 6]
    # one convolution per decoder stage (nnU-Net's n_conv_per_stage_decoder = 1)
    convs = [
        sum(isinstance(m, torch.nn.Conv3d) for m in up.conv_block.modules()) for up in net.upsamples
    ]
    assert convs == [1, 1, 1]
    # M, L and XL are planning presets: the same network
    sizes = {
        _params(build_network(_config(3, architecture="resenc_unet", size=s), 1, 2, 3))
        for s in ("M", "L", "XL")
    }
    assert sizes == {_params(net)}


def test_unetr_follows_vit_presets_and_matches_monai() -> None:
    cfg = _config(3, architecture="unetr", size="S")
    net = build_network(cfg, 1, 2, 3, patch_size=(16, 32, 16))
    assert net.vit.blocks[0].mlp.linear1.in_features == 384
    assert len(net.vit.blocks) == 12
    reference = UNETR(
        1,
        2,
        (16, 32, 16),
        hidden_size=384,
        mlp_dim=1536,
        num_heads=6,
        norm_name=("INSTANCE", {"affine": True}),
    )
    unused = sum(b.norm_cross_attn.weight.numel() * 2 for b in reference.vit.blocks)
    assert _params(net) == _params(reference) - unused


@pytest.mark.parametrize(
    ("name", "patch", "overrides", "message"),
    [
        ("unetr", (16, 40, 16), {}, r"multiple of 16.*patch_size=\[16, 48, 16\]"),
        ("unetr", None, {}, "needs the patch size"),
        ("unetr", (16, 32, 16), {"size": "XL"}, "does not apply to 'unetr'"),
        ("resenc_unet", None, {"size": "S"}, "does not apply to 'resenc_unet'"),
        ("dynunet", None, {"size": "M"}, "does not apply to 'dynunet'"),
        ("unet", None, {"gradient_checkpointing": True}, "no gradient checkpointing"),
        ("attention_unet", None, {"gradient_checkpointing": True}, "no gradient checkpointing"),
    ],
)
def test_impossible_combinations_are_config_errors(name, patch, overrides, message) -> None:
    cfg = _config(3, architecture=name, **overrides)
    with pytest.raises(ConfigError, match=message):
        build_network(cfg, 1, 2, 3, patch_size=patch)


def test_bottleneck_transformer_mixes_distant_voxels() -> None:
    torch.manual_seed(0)
    block = BottleneckTransformer(3, 32, depth=1).eval()
    x = torch.randn(1, 32, 4, 4, 4)
    y = x.clone()
    y[..., 3, 3, 3] += 1.0  # far outside the 3-voxel positional convolution of voxel (0, 0, 0)
    with torch.no_grad():
        assert not torch.allclose(block(x)[..., 0, 0, 0], block(y)[..., 0, 0, 0])
        assert block(x).shape == x.shape


def test_architecture_and_size_are_plan_overrides(plan) -> None:
    changed = apply_overrides(plan, {"network.architecture": "hybrid_unet", "network.size": "L"})
    net_cfg = changed.configuration().network
    assert (net_cfg.architecture, net_cfg.size) == ("hybrid_unet", "L")
    with pytest.raises(ConfigError, match="size"):
        apply_overrides(plan, {"network.size": "XXL"})


def test_trainer_builds_from_the_plan_and_passes_the_patch(tmp_path, source, plan) -> None:
    ids = list(source.case_ids)

    def train(overrides: dict, out: str):
        changed = apply_overrides(plan, overrides)
        save_model_folder(tmp_path / out, changed, configuration="3d")
        return train_fold(
            source,
            changed,
            "3d",
            tmp_path / out,
            0,
            train_ids=ids[:3],
            val_ids=ids[3:],
            device="cpu",
        )

    # the tiny plan's 8^3 patch reaches UNETR's builder, which needs multiples of 16
    with pytest.raises(ConfigError, match=r"multiple of 16.*\[16, 16, 16\]"):
        train({"network.architecture": "unetr"}, "unetr")
    train({"network.architecture": "unet", "network.size": "L"}, "unet")
    net = ModelFolder.load(tmp_path / "unet").build_network(0)
    assert net.model[0].conv.out_channels == 8  # 4 features x2 (size L), weights loaded
