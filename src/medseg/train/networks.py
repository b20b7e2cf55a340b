"""Segmentation networks built from a plan's :class:`~medseg.plan.plan.NetworkConfig`.

A small registry maps an architecture name to a builder
``builder(net_config, in_channels, out_channels, ndim) -> nn.Module``. Built in (papers,
sizes and measured costs in docs/methods.md):

``dynunet`` (default)
    MONAI ``DynUNet`` (nnU-Net's plain U-Net; ``residual=True`` gives ``UnetResBlock``
    stages), with deep-supervision heads and optional gradient checkpointing. In training mode
    it returns a list of logits at decreasing resolution, each at its native size (no
    interpolation), which :mod:`medseg.train.losses` scores against labels downsampled to the
    same size. ``network.size`` S/B/L scales its filters by 0.5/1/2.
``unet``, ``resenc_unet``, ``unetr``, ``hybrid_unet``
    See :mod:`medseg.train.network_zoo`.
``attention_unet``
    MONAI ``AttentionUnet`` on the plan's filters and strides.
``swinunetr``
    MONAI ``SwinUNETR`` (patch edges must be divisible by 32).

Networks without deep supervision (``unet``, ``unetr``, ``attention_unet``, ``swinunetr``)
return one tensor, which the loss scores alone. Users add their own with
:func:`register_network`. Every network takes ``(B, C_in, *spatial)`` and returns
``(B, C_out, *spatial)`` logits in eval mode; :func:`output_list` turns whatever a network
returns in training mode into a list of tensors, full resolution first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from medseg.errors import ConfigError
from medseg.plan.plan import NetworkConfig
from medseg.train import network_zoo
from medseg.train.dynunet import MedsegDynUNet, check_topology, dynunet, plan_filters

__all__ = [
    "MedsegDynUNet",
    "NetworkBuilder",
    "available_networks",
    "build_network",
    "output_list",
    "register_network",
]

NetworkBuilder = Callable[..., nn.Module]

_REGISTRY: dict[str, tuple[NetworkBuilder, bool]] = {}


def register_network(
    name: str, builder: NetworkBuilder, *, overwrite: bool = False, needs_patch: bool = False
) -> None:
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
    needs_patch : bool
        The network is built for one input size: ``builder`` also receives the keyword
        ``patch_size`` (tuple of int, voxels in array axis order, or None if unknown).

    Raises
    ------
    ConfigError
        If ``name`` is taken and ``overwrite`` is False.
    """
    if name in _REGISTRY and not overwrite:
        raise ConfigError(f"network {name!r} is already registered; pass overwrite=True")
    _REGISTRY[name] = (builder, needs_patch)


def available_networks() -> tuple[str, ...]:
    """Registered architecture names, sorted."""
    return tuple(sorted(_REGISTRY))


def build_network(
    net_config: NetworkConfig,
    in_channels: int,
    out_channels: int,
    ndim: int,
    *,
    patch_size: Sequence[int] | None = None,
) -> nn.Module:
    """Build the network named by ``net_config.architecture``.

    Parameters
    ----------
    net_config : NetworkConfig
        Filters, kernels and strides per stage (array axis order), deep-supervision settings,
        size preset.
    in_channels, out_channels : int
        Input image channels; output logit channels (classes or regions).
    ndim : int
        Spatial dimensions, 2 or 3.
    patch_size : sequence of int, optional
        The configuration's patch (voxels, array axis order): the only input size of ``unetr``,
        checked for ``swinunetr``.

    Returns
    -------
    nn.Module
        In training mode (train()).

    Raises
    ------
    ConfigError
        Unknown architecture, or settings the architecture rejects.
    """
    entry = _REGISTRY.get(net_config.architecture)
    if entry is None:
        raise ConfigError(
            f"unknown network architecture {net_config.architecture!r} "
            f"(available: {list(available_networks())}); register it with register_network()"
        )
    builder, needs_patch = entry
    patch = None if patch_size is None else tuple(int(p) for p in patch_size)
    try:
        if needs_patch:
            return builder(net_config, in_channels, out_channels, ndim, patch_size=patch)
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


def _dynunet(cfg: NetworkConfig, in_channels: int, out_channels: int, ndim: int) -> nn.Module:
    return dynunet(cfg, in_channels, out_channels, ndim, residual=cfg.residual)


def _attention_unet(
    cfg: NetworkConfig, in_channels: int, out_channels: int, ndim: int
) -> nn.Module:
    from monai.networks.nets import AttentionUnet

    check_topology(cfg, ndim)
    network_zoo.refuse_checkpointing(cfg)
    return AttentionUnet(
        spatial_dims=ndim,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=list(plan_filters(cfg)),
        strides=[list(s) for s in cfg.strides[1:]],
    )


def _swinunetr(
    cfg: NetworkConfig,
    in_channels: int,
    out_channels: int,
    ndim: int,
    *,
    patch_size: Sequence[int] | None,
) -> nn.Module:
    from monai.networks.nets import SwinUNETR

    if patch_size is not None and any(p % 32 for p in patch_size):
        fixed = [-(-p // 32) * 32 for p in patch_size]
        raise ConfigError(
            f"network 'swinunetr' halves the patch 5 times, but patch_size {list(patch_size)} "
            f"is not a multiple of 32 on every axis; set <configuration>.patch_size={fixed}"
        )
    return SwinUNETR(
        in_channels=in_channels,
        out_channels=out_channels,
        feature_size=max(12, plan_filters(cfg)[0] // 12 * 12),
        spatial_dims=ndim,
        use_checkpoint=cfg.gradient_checkpointing,
    )


register_network("dynunet", _dynunet)
register_network("attention_unet", _attention_unet)
register_network("swinunetr", _swinunetr, needs_patch=True)
register_network("unet", network_zoo.unet)
register_network("resenc_unet", network_zoo.resenc_unet)
register_network("unetr", network_zoo.unetr, needs_patch=True)
register_network("hybrid_unet", network_zoo.hybrid_unet)
