"""Segmentation networks built from a plan's :class:`~medseg.plan.plan.NetworkConfig`.

A small registry maps an architecture name to a builder
``builder(net_config, in_channels, out_channels, ndim) -> nn.Module``. Built in:

``dynunet``
    MONAI ``DynUNet`` (nnU-Net's plain U-Net; ``residual=True`` gives the residual-encoder
    variant with ``UnetResBlock`` stages), with deep-supervision heads and optional gradient
    checkpointing. In training mode it returns a list of logits at decreasing resolution, each
    at its native size (no interpolation), which :mod:`medseg.train.losses` scores against
    labels downsampled to the same size.
``attention_unet``
    MONAI ``AttentionUnet`` on the plan's filters and strides.
``swinunetr``
    MONAI ``SwinUNETR`` (patch edges must be divisible by 32).

Users add their own with :func:`register_network`. Every network takes ``(B, C_in, *spatial)``
and returns ``(B, C_out, *spatial)`` logits in eval mode; :func:`output_list` turns whatever a
network returns in training mode into a list of tensors, full resolution first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.networks.nets import DynUNet
from torch import nn
from torch.utils.checkpoint import checkpoint

from medseg.errors import ConfigError
from medseg.plan.plan import NetworkConfig

NetworkBuilder = Callable[[NetworkConfig, int, int, int], nn.Module]

_REGISTRY: dict[str, NetworkBuilder] = {}


def register_network(name: str, builder: NetworkBuilder, *, overwrite: bool = False) -> None:
    """Make ``builder`` available as ``NetworkConfig.architecture == name``.

    Parameters
    ----------
    name : str
        Architecture name used in ``plan.json``.
    builder : callable
        ``builder(net_config, in_channels, out_channels, ndim) -> nn.Module``. The module maps
        ``(B, in_channels, *spatial)`` to ``(B, out_channels, *spatial)`` logits in eval mode; in
        training mode it may return a list of logits at decreasing resolution (deep supervision).
    overwrite : bool
        Replace an existing registration instead of raising.

    Raises
    ------
    ConfigError
        If ``name`` is taken and ``overwrite`` is False.
    """
    if name in _REGISTRY and not overwrite:
        raise ConfigError(f"network {name!r} is already registered; pass overwrite=True")
    _REGISTRY[name] = builder


def available_networks() -> tuple[str, ...]:
    """Registered architecture names, sorted."""
    return tuple(sorted(_REGISTRY))


def build_network(
    net_config: NetworkConfig, in_channels: int, out_channels: int, ndim: int
) -> nn.Module:
    """Build the network named by ``net_config.architecture``.

    Parameters
    ----------
    net_config : NetworkConfig
        Filters, kernels and strides per stage (array axis order), deep-supervision settings.
    in_channels, out_channels : int
        Input image channels; output logit channels (classes or regions).
    ndim : int
        Spatial dimensions, 2 or 3.

    Returns
    -------
    nn.Module
        In training mode (train()).

    Raises
    ------
    ConfigError
        Unknown architecture, or settings the architecture rejects.
    """
    builder = _REGISTRY.get(net_config.architecture)
    if builder is None:
        raise ConfigError(
            f"unknown network architecture {net_config.architecture!r} "
            f"(available: {list(available_networks())}); register it with register_network()"
        )
    try:
        return builder(net_config, in_channels, out_channels, ndim)
    except (ValueError, AssertionError, TypeError) as err:
        raise ConfigError(f"network {net_config.architecture!r}: {err}") from err


def output_list(output: torch.Tensor | Sequence[torch.Tensor], ndim: int) -> list[torch.Tensor]:
    """Normalise a network's output to a list of logits, full resolution first.

    Parameters
    ----------
    output : Tensor or sequence of Tensor
        ``(B, C, *spatial)``; a list of those; or MONAI DynUNet's stacked deep-supervision tensor
        ``(B, S, C, *spatial)``.
    ndim : int
        Number of spatial dimensions.
    """
    if isinstance(output, torch.Tensor):
        if output.ndim == ndim + 3:
            return list(torch.unbind(output, dim=1))
        return [output]
    return list(output)


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


def _dynunet(cfg: NetworkConfig, in_channels: int, out_channels: int, ndim: int) -> nn.Module:
    _check_topology(cfg, ndim)
    heads = min(cfg.deep_supervision_heads, len(cfg.strides) - 2) if cfg.deep_supervision else 1
    return MedsegDynUNet(
        spatial_dims=ndim,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=[list(k) for k in cfg.kernel_sizes],
        strides=[list(s) for s in cfg.strides],
        upsample_kernel_size=[list(s) for s in cfg.strides[1:]],
        filters=list(cfg.filters),
        norm_name=("INSTANCE", {"affine": True}),
        act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
        deep_supervision=cfg.deep_supervision and heads >= 1,
        deep_supr_num=max(heads, 1),
        res_block=cfg.residual,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )


def _attention_unet(
    cfg: NetworkConfig, in_channels: int, out_channels: int, ndim: int
) -> nn.Module:
    from monai.networks.nets import AttentionUnet

    _check_topology(cfg, ndim)
    return AttentionUnet(
        spatial_dims=ndim,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=list(cfg.filters),
        strides=[list(s) for s in cfg.strides[1:]],
    )


def _swinunetr(cfg: NetworkConfig, in_channels: int, out_channels: int, ndim: int) -> nn.Module:
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(
        in_channels=in_channels,
        out_channels=out_channels,
        feature_size=max(12, cfg.filters[0] // 12 * 12),
        spatial_dims=ndim,
        use_checkpoint=cfg.gradient_checkpointing,
    )


def _check_topology(cfg: NetworkConfig, ndim: int) -> None:
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


register_network("dynunet", _dynunet)
register_network("attention_unet", _attention_unet)
register_network("swinunetr", _swinunetr)
