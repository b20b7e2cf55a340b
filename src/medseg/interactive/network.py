"""The promptable 2D network of the learned engine and its model folder.

Input channels, in the spirit of ScribblePrompt, all at ``size x size``: the image channels
(each z-scored on the crop), a filled box mask, positive clicks + strokes, negative clicks +
strokes, and the previous mask as ``2 * mask - 1`` (0 before the first prediction). Output: one
logit map. The network is MONAI's :class:`~monai.networks.nets.UNet`, whose first layer already
strides by 2: most of its work happens at half resolution, which keeps a CPU training step and
a 128² inference cheap (about 20-40 ms per slice on one or two shared cores).

Model folder::

    MODEL/interactive.json     InteractiveModelConfig (format, medseg version, architecture)
    MODEL/model.safetensors    weights (no pickle)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.nets import UNet
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from medseg import __version__
from medseg._atomic import atomic_path
from medseg._config import from_jsonable, read_json, write_json
from medseg.errors import ConfigError, ModelFormatError

FORMAT = "medseg-interactive-1"
CONFIG_NAME = "interactive.json"
WEIGHTS_NAME = "model.safetensors"
PROMPT_CHANNELS = 4


@dataclass(frozen=True, kw_only=True)
class InteractiveModelConfig:
    """Architecture and provenance of a promptable network.

    Parameters
    ----------
    image_channels : int
        Image channels of the data it was trained on.
    size : int
        Side of the square the crop is resized to (pixels).
    channels, strides : tuple of int
        Channels per level and strides between levels of :class:`~monai.networks.nets.UNet`.
    num_res_units : int
        Residual units per level.
    click_radius : int
        Clicks are drawn as squares of side ``2 * click_radius + 1`` at network resolution.
    training : dict
        Provenance written by the trainer: dataset, iterations, final loss, seconds, settings.
    """

    image_channels: int = 1
    size: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    click_radius: int = 2
    format: str = FORMAT
    medseg_version: str = __version__
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        step = math.prod(self.strides)
        if self.size < step or self.size % step:
            raise ConfigError(f"size {self.size} must be a positive multiple of {step} (strides)")
        if len(self.channels) != len(self.strides) + 1:
            raise ConfigError(
                f"channels {self.channels} need one more level than strides {self.strides}"
            )


def build_network(config: InteractiveModelConfig) -> nn.Module:
    """A 2D MONAI UNet with ``image_channels + 4`` inputs and one logit output."""
    return UNet(
        spatial_dims=2,
        in_channels=config.image_channels + PROMPT_CHANNELS,
        out_channels=1,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
    )


def encode(
    image: torch.Tensor,
    box: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    previous: torch.Tensor,
    config: InteractiveModelConfig,
) -> torch.Tensor:
    """Stack and resize a batch of crops' channels to the network input.

    Parameters
    ----------
    image : Tensor, shape (B, C, H, W)
        Normalised image crops.
    box, positive, negative : Tensor of bool or float, shape (B, H, W)
        Prompt maps at crop resolution.
    previous : Tensor, shape (B, H, W)
        ``2 * mask - 1`` of the current masks, or zeros before the first prediction.

    Returns
    -------
    Tensor, shape (B, C + 4, size, size)
        Image and previous mask bilinearly resized; prompt maps max-pooled (nothing is lost
        when shrinking) and clicks thickened by ``click_radius``.
    """
    size = (config.size, config.size)
    dense = torch.cat([image.float(), previous[:, None].float()], dim=1)
    sparse = torch.stack([box, positive, negative], dim=1).float()
    if tuple(dense.shape[-2:]) != size:  # training crops already have the network's size
        dense = F.interpolate(dense, size=size, mode="bilinear", align_corners=False)
        sparse = F.adaptive_max_pool2d(sparse, size)
    r = config.click_radius
    if r and bool(sparse[:, 1:].any()):
        clicks = F.max_pool2d(sparse[:, 1:], 2 * r + 1, stride=1, padding=r)
        sparse = torch.cat([sparse[:, :1], clicks], dim=1)
    return torch.cat([dense[:, :-1], sparse, dense[:, -1:]], dim=1)


def save_model(net: nn.Module, config: InteractiveModelConfig, folder: Path) -> None:
    """Write ``interactive.json`` and ``model.safetensors`` atomically into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_NAME
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    write_json(config, folder / CONFIG_NAME)


def load_model(folder: Path) -> tuple[nn.Module, InteractiveModelConfig]:
    """Load a model folder written by :func:`save_model`; never unpickles.

    Raises
    ------
    ModelFormatError
        Missing files, another format, or weights that do not fit the architecture.
    """
    folder = Path(folder)
    config_path, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in (config_path, weights):
        if not path.is_file():
            raise ModelFormatError(
                f"{path}: missing; an interactive model folder holds {CONFIG_NAME} and "
                f"{WEIGHTS_NAME} (train one with `medseg train-interactive`)"
            )
    try:
        config = from_jsonable(
            InteractiveModelConfig, read_json(config_path), source=str(config_path)
        )
    except ConfigError as err:
        raise ModelFormatError(str(err)) from err
    if config.format != FORMAT:
        raise ModelFormatError(f"{config_path}: format {config.format!r}, expected {FORMAT!r}")
    net = build_network(config)
    try:
        net.load_state_dict(load_file(str(weights)))
    except (SafetensorError, RuntimeError, OSError) as err:
        raise ModelFormatError(f"{weights}: unreadable or wrong architecture ({err})") from err
    return net.eval(), config
