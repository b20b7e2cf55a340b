"""The plan's U-Net: MONAI ``DynUNet`` with native-resolution deep supervision.

:class:`MedsegDynUNet` is the default network (``network.architecture: dynunet``) and the
base of the residual-encoder and hybrid networks in :mod:`medseg.train.network_zoo`.
:func:`check_topology` and :func:`plan_filters` read a :class:`~medseg.plan.plan.NetworkConfig`
the same way for every network built from the plan's stages.
"""

from __future__ import annotations

import torch
from monai.networks.nets import DynUNet
from torch import nn
from torch.utils.checkpoint import checkpoint

from medseg.errors import ConfigError
from medseg.plan.plan import NetworkConfig

WIDTH_PRESETS = {"S": 0.5, "B": 1.0, "L": 2.0}
"""``network.size`` of the plan-built families: a multiplier of every stage's filters."""

NORM = ("INSTANCE", {"affine": True})
ACT = ("leakyrelu", {"inplace": True, "negative_slope": 0.01})


class MedsegDynUNet(DynUNet):
    """MONAI ``DynUNet`` with native-resolution deep supervision and gradient checkpointing.

    The forward pass walks the same modules as ``DynUNet`` (weights are interchangeable) but
    returns, in training mode with deep supervision, ``[full, 1/2, 1/4, ...]`` logits each at
    its own resolution instead of upsampling and stacking them. With ``gradient_checkpointing``
    every encoder and decoder stage is recomputed in the backward pass (less memory, ~30 % more
    compute).
    """

    def __init__(self, *args, gradient_checkpointing: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The recursive skip-layer view aliases the same modules; the explicit forward below
        # replaces it, and dropping it keeps state_dict free of duplicate (shared) tensors.
        del self.skip_layers
        self.gradient_checkpointing = gradient_checkpointing

    def _run(self, module: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(module, *inputs, use_reentrant=False)
        return module(*inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        skips = [self._run(self.input_block, x)]
        for down in self.downsamples:
            skips.append(self._run(down, skips[-1]))
        out = self._run(self.bottleneck, skips[-1])
        want_heads = self.training and self.deep_supervision
        heads: dict[int, torch.Tensor] = {}
        for k, up in enumerate(self.upsamples):
            level = len(skips) - 1 - k
            out = self._run(up, out, skips[level])
            if want_heads and 1 <= level <= self.deep_supr_num:
                heads[level] = self.deep_supervision_heads[level - 1](out)
        out = self.output_block(out)
        if want_heads:
            return [out] + [heads[level] for level in sorted(heads)]
        return out


def plan_filters(cfg: NetworkConfig) -> tuple[int, ...]:
    """The stage filters after the ``network.size`` width preset (S x0.5, B x1, L x2).

    Raises
    ------
    ConfigError
        If ``cfg.size`` is not a width preset (e.g. ``M``, a residual-encoder preset).
    """
    if cfg.size is None:
        return tuple(cfg.filters)
    if cfg.size not in WIDTH_PRESETS:
        raise ConfigError(
            f"network.size {cfg.size!r} does not apply to {cfg.architecture!r}: use one of "
            f"{list(WIDTH_PRESETS)} (filters x0.5, x1, x2) or null"
        )
    return tuple(max(2, round(f * WIDTH_PRESETS[cfg.size])) for f in cfg.filters)


def check_topology(cfg: NetworkConfig, ndim: int) -> None:
    """Raise ConfigError unless the plan has >= 3 stages with ``ndim`` kernel and stride values."""
    n = len(cfg.filters)
    if n < 3 or len(cfg.kernel_sizes) != n or len(cfg.strides) != n:
        raise ConfigError(
            f"network needs >= 3 stages with one filter, kernel and stride each; got "
            f"{n} filters, {len(cfg.kernel_sizes)} kernels, {len(cfg.strides)} strides"
        )
    for name, tuples in (("kernel_sizes", cfg.kernel_sizes), ("strides", cfg.strides)):
        bad = [t for t in tuples if len(t) != ndim]
        if bad:
            raise ConfigError(f"network.{name}: {bad[0]} has not {ndim} entries (one per axis)")


def dynunet(
    cfg: NetworkConfig, in_channels: int, out_channels: int, ndim: int, *, residual: bool
) -> MedsegDynUNet:
    """The plan's ``MedsegDynUNet`` (filters after the width preset)."""
    check_topology(cfg, ndim)
    heads = min(cfg.deep_supervision_heads, len(cfg.strides) - 2) if cfg.deep_supervision else 1
    return MedsegDynUNet(
        spatial_dims=ndim,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=[list(k) for k in cfg.kernel_sizes],
        strides=[list(s) for s in cfg.strides],
        upsample_kernel_size=[list(s) for s in cfg.strides[1:]],
        filters=list(plan_filters(cfg)),
        norm_name=NORM,
        act_name=ACT,
        deep_supervision=cfg.deep_supervision and heads >= 1,
        deep_supr_num=max(heads, 1),
        res_block=residual,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
