"""Networks of the literature, selectable with ``network.architecture`` (docs/methods.md).

Builders for :mod:`medseg.train.networks`' registry, each from MONAI parts:

``unet``
    MONAI ``UNet`` on the plan's filters and strides (one strided convolution per encoder
    level; ``residual: true`` gives two residual units per level instead).
``resenc_unet``
    nnU-Net's residual-encoder U-Net: 1, 3, 4, 6, 6, ... residual blocks per encoder stage and
    one convolution per decoder stage, on ``MedsegDynUNet`` (deep supervision, checkpointing).
``unetr``
    MONAI ``UNETR``: a ViT-S/B/L on 16-voxel patches of the input, a convolutional decoder.
``hybrid_unet``
    The plan's U-Net with transformer blocks on the bottleneck's voxels (TransUNet's design on
    a convolutional encoder), positions from a depthwise convolution.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from monai.networks.blocks import TransformerBlock
from monai.networks.blocks.dynunet_block import UnetResBlock
from torch import nn

from medseg.errors import ConfigError
from medseg.plan.budget import RESENC_MEMORY_GB
from medseg.plan.plan import NetworkConfig
from medseg.train.dynunet import ACT, NORM, MedsegDynUNet, check_topology, dynunet, plan_filters

RESENC_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6)
"""Residual blocks per encoder stage of nnU-Net's ResEnc presets (the same for M, L and XL)."""

VIT_PRESETS = {"S": (384, 1536, 6), "B": (768, 3072, 12), "L": (1024, 4096, 16)}
"""UNETR's transformer per ``network.size``: hidden size, MLP size, attention heads."""

UNETR_PATCH = 16
HYBRID_DEPTH = 4
HYBRID_HEAD_DIM = 32


def unet(cfg: NetworkConfig, in_channels: int, out_channels: int, ndim: int) -> nn.Module:
    """MONAI ``UNet`` with the plan's filters (after the width preset) and strides."""
    from monai.networks.nets import UNet

    check_topology(cfg, ndim)
    refuse_checkpointing(cfg)
    return UNet(
        spatial_dims=ndim,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=plan_filters(cfg),
        strides=[tuple(s) for s in cfg.strides[1:]],
        num_res_units=2 if cfg.residual else 0,
        act=ACT,
        norm=NORM,
    )


def resenc_unet(
    cfg: NetworkConfig, in_channels: int, out_channels: int, ndim: int
) -> MedsegDynUNet:
    """nnU-Net's residual-encoder U-Net on the plan's stages (filters as planned).

    ``network.size`` M, L or XL (default M) is a planning preset (the GPU memory target, so the
    patch and batch: :func:`medseg.plan.budget.network_preset_budget`); the network is the same
    for all three, as in nnU-Net.
    """
    if cfg.size not in (None, *RESENC_MEMORY_GB):
        raise ConfigError(
            f"network.size {cfg.size!r} does not apply to 'resenc_unet': use one of "
            f"{list(RESENC_MEMORY_GB)} (nnU-Net's ResEnc presets) or null"
        )
    net = dynunet(
        dataclasses.replace(cfg, size=None), in_channels, out_channels, ndim, residual=True
    )
    stages = [net.input_block, *net.downsamples, net.bottleneck]
    deeper = []
    for stage, (first, blocks) in enumerate(zip(stages, RESENC_BLOCKS, strict=False)):
        width, kernel = cfg.filters[stage], cfg.kernel_sizes[stage]
        extra = [
            UnetResBlock(ndim, width, width, kernel, stride=1, norm_name=NORM, act_name=ACT)
            for _ in range(blocks - 1)
        ]
        deeper.append(nn.Sequential(first, *extra))
    net.input_block = deeper[0]
    net.downsamples = nn.ModuleList(deeper[1:-1])
    net.bottleneck = deeper[-1]
    for up in net.upsamples:
        block = up.conv_block
        up.conv_block = nn.Sequential(block.conv1, block.norm1, block.lrelu)
    return net


def unetr(
    cfg: NetworkConfig,
    in_channels: int,
    out_channels: int,
    ndim: int,
    *,
    patch_size: Sequence[int] | None,
) -> nn.Module:
    """MONAI ``UNETR`` for a fixed input patch (every edge a multiple of 16 voxels)."""
    from monai.networks.nets import UNETR

    if patch_size is None:
        raise ConfigError("network 'unetr' needs the patch size (its position embedding)")
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != ndim or any(p % UNETR_PATCH for p in patch):
        fixed = [-(-p // UNETR_PATCH) * UNETR_PATCH for p in patch]
        raise ConfigError(
            f"network 'unetr' cuts the patch into {UNETR_PATCH}-voxel tokens, but patch_size "
            f"{list(patch)} is not a multiple of {UNETR_PATCH} on every axis; set "
            f"<configuration>.patch_size={fixed}"
        )
    size = cfg.size or "B"
    if size not in VIT_PRESETS:
        raise ConfigError(
            f"network.size {size!r} does not apply to 'unetr': use one of {list(VIT_PRESETS)} "
            "(ViT-S/B/L) or null"
        )
    refuse_checkpointing(cfg)
    hidden, mlp, heads = VIT_PRESETS[size]
    net = UNETR(
        in_channels=in_channels,
        out_channels=out_channels,
        img_size=patch,
        feature_size=16,
        hidden_size=hidden,
        mlp_dim=mlp,
        num_heads=heads,
        norm_name=NORM,
        spatial_dims=ndim,
    )
    return without_cross_attention_norms(net)


class BottleneckTransformer(nn.Module):
    """Transformer blocks over the voxels of a feature map ``(B, C, *spatial)``.

    Positions enter as a depthwise 3-voxel convolution added to the features (conditional
    positional encoding), so any input size works. Output has the input's shape.
    """

    def __init__(self, ndim: int, channels: int, depth: int) -> None:
        super().__init__()
        heads = max(1, channels // HYBRID_HEAD_DIM)
        while channels % heads:
            heads -= 1
        conv = nn.Conv3d if ndim == 3 else nn.Conv2d
        self.position = conv(channels, channels, 3, padding=1, groups=channels)
        blocks = [
            TransformerBlock(channels, 4 * channels, heads, qkv_bias=True) for _ in range(depth)
        ]
        self.blocks = nn.ModuleList(without_cross_attention_norms(b) for b in blocks)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.position(x)
        tokens = x.flatten(2).transpose(1, 2)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens).transpose(1, 2).reshape(x.shape)


def hybrid_unet(
    cfg: NetworkConfig, in_channels: int, out_channels: int, ndim: int
) -> MedsegDynUNet:
    """The plan's ``MedsegDynUNet`` with transformer blocks after its bottleneck.

    :data:`HYBRID_DEPTH` blocks as wide as the deepest stage; deep supervision, gradient
    checkpointing and the width presets as ``dynunet``.
    """
    net = dynunet(cfg, in_channels, out_channels, ndim, residual=cfg.residual)
    channels = plan_filters(cfg)[-1]
    net.bottleneck = nn.Sequential(
        net.bottleneck, BottleneckTransformer(ndim, channels, HYBRID_DEPTH)
    )
    return net


def without_cross_attention_norms(net: nn.Module) -> nn.Module:
    """``net`` with the unused cross-attention norms of MONAI transformer blocks removed.

    MONAI's ``TransformerBlock`` creates ``norm_cross_attn`` even without cross-attention; its
    parameters never get a gradient (data-parallel training would stop on them).
    """
    for module in net.modules():
        if isinstance(module, TransformerBlock) and not module.with_cross_attention:
            module.norm_cross_attn = nn.Identity()
    return net


def refuse_checkpointing(cfg: NetworkConfig) -> None:
    """Raise ConfigError if ``cfg`` asks for gradient checkpointing (the network has none)."""
    if cfg.gradient_checkpointing:
        raise ConfigError(
            f"network {cfg.architecture!r} has no gradient checkpointing; set "
            "network.gradient_checkpointing=false or use dynunet, resenc_unet, hybrid_unet "
            "or swinunetr"
        )
