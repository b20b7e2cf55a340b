"""Fine-tuning: start a network from pretrained weights, with a lower learning rate for its encoder.

``medseg train --init SOURCE`` (``train_model(init=SOURCE)``) loads, before the first
iteration, every tensor of ``SOURCE`` whose name and shape match a tensor of the plan's network;
the others keep their random initialisation (e.g. the output layers of a model trained for other
classes, or the decoder when ``SOURCE`` holds only an encoder). ``SOURCE`` is a model folder (its
``fold_all`` weights, else those of its lowest fold), a fold folder, or a ``.safetensors`` file
such as the encoder written by ``medseg pretrain``. What was loaded and skipped is logged and
written to ``init_report.json`` in the fold folder.

``training.encoder_lr_scale`` (default 1) multiplies the learning rate of the encoder's
parameters, so pretrained features change more slowly than the layers learned from scratch
(layer-wise learning rates, as in discriminative fine-tuning). The encoder is named per
architecture by :func:`encoder_parameter_names`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from medseg._config import write_json
from medseg._typing import PathLikeStr
from medseg.errors import ConfigError, ModelFormatError
from medseg.plan.plan import TrainingConfig
from medseg.train.model_folder import WEIGHTS_NAME

logger = logging.getLogger(__name__)

ENCODER_PREFIXES: dict[str, tuple[str, ...]] = {
    "MedsegDynUNet": ("input_block.", "downsamples.", "bottleneck."),
    "DynUNet": ("input_block.", "downsamples.", "bottleneck."),
    "SwinUNETR": ("swinViT.", "encoder1.", "encoder2.", "encoder3.", "encoder4.", "encoder10."),
    "UNETR": ("vit.", "encoder1.", "encoder2.", "encoder3.", "encoder4."),
}
"""Parameter-name prefixes of the encoder, by network class name."""


@dataclass(frozen=True, kw_only=True)
class InitReport:
    """What :func:`load_initial_weights` did.

    Attributes
    ----------
    source : str
        The weights file read.
    loaded : tuple of str
        Network tensors taken from the source.
    shape_mismatch : tuple of (str, tuple of int, tuple of int)
        Name, source shape and network shape of tensors present in both but of other shapes.
    missing : tuple of str
        Network tensors the source lacks (left as initialised).
    unused : tuple of str
        Source tensors the network lacks.
    """

    source: str
    loaded: tuple[str, ...]
    shape_mismatch: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    missing: tuple[str, ...]
    unused: tuple[str, ...]

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"initialised from {self.source}: {len(self.loaded)} tensors loaded, "
            f"{len(self.shape_mismatch)} skipped (other shape), {len(self.missing)} not in the "
            f"source, {len(self.unused)} of the source unused"
        )


def resolve_init_file(source: PathLikeStr) -> Path:
    """The weights file that ``source`` names.

    Parameters
    ----------
    source : path
        A ``.safetensors`` file, a fold folder (``model.safetensors`` inside) or a model folder
        (``fold_all``, else the lowest-numbered fold with weights).

    Raises
    ------
    ModelFormatError
        If ``source`` does not exist or holds no weights.
    """
    path = Path(source)
    if path.is_file():
        return path
    if (path / WEIGHTS_NAME).is_file():
        return path / WEIGHTS_NAME
    folds = sorted(
        (p for p in path.glob(f"fold_*/{WEIGHTS_NAME}")),
        key=lambda p: (p.parent.name != "fold_all", _fold_number(p.parent.name)),
    )
    if folds:
        return folds[0]
    raise ModelFormatError(
        f"{path}: no weights to start from; give a .safetensors file (e.g. from medseg "
        "pretrain), a trained model folder or one of its fold folders"
    )


def load_initial_weights(net: nn.Module, source: PathLikeStr) -> InitReport:
    """Copy every tensor of ``source`` whose name and shape match one of ``net`` into ``net``.

    Parameters
    ----------
    net : nn.Module
        The network, built from the plan (modified in place).
    source : path
        As :func:`resolve_init_file`.

    Returns
    -------
    InitReport

    Raises
    ------
    ModelFormatError
        If the file is not safetensors, or no tensor matches (another architecture or plan).
    """
    path = resolve_init_file(source)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ModelFormatError(f"{path}: not a readable safetensors file ({err})") from err
    state = net.state_dict()
    loaded, mismatch = [], []
    for name, tensor in tensors.items():
        if name not in state:
            continue
        if tuple(tensor.shape) != tuple(state[name].shape):
            mismatch.append((name, tuple(tensor.shape), tuple(state[name].shape)))
            continue
        state[name] = tensor.to(dtype=state[name].dtype)
        loaded.append(name)
    if not loaded:
        raise ModelFormatError(
            f"{path}: none of its {len(tensors)} tensors matches the network's names and shapes "
            f"({type(net).__name__}); was it trained with another architecture or plan?"
        )
    net.load_state_dict(state, strict=True)
    report = InitReport(
        source=str(path),
        loaded=tuple(loaded),
        shape_mismatch=tuple(mismatch),
        missing=tuple(name for name in state if name not in tensors),
        unused=tuple(name for name in tensors if name not in state),
    )
    logger.info(report.summary())
    return report


def write_init_report(report: InitReport, fold_path: Path) -> None:
    """Write ``init_report.json`` into the fold folder."""
    write_json(report, fold_path / "init_report.json")


def encoder_parameter_names(net: nn.Module) -> set[str]:
    """Names of the encoder's parameters of ``net`` (its class must be in ENCODER_PREFIXES).

    Raises
    ------
    ConfigError
        If the architecture does not name its encoder.
    """
    prefixes = ENCODER_PREFIXES.get(type(net).__name__)
    if prefixes is None:
        raise ConfigError(
            f"network {type(net).__name__} does not name its encoder, so "
            "training.encoder_lr_scale cannot lower its learning rate; leave it at 1 or add the "
            "class to medseg.train.finetune.ENCODER_PREFIXES"
        )
    return {name for name, _ in net.named_parameters() if name.startswith(prefixes)}


def parameter_groups(net: nn.Module, training: TrainingConfig) -> list[dict]:
    """Optimizer parameter groups: the rest at the full rate first, then the encoder scaled.

    Each group has an ``lr_scale`` that the schedule multiplies the learning rate by.
    """
    scale = training.encoder_lr_scale
    if scale == 1.0:
        return [{"params": list(net.parameters()), "lr_scale": 1.0}]
    encoder = encoder_parameter_names(net)
    named = list(net.named_parameters())
    return [
        {"params": [p for n, p in named if n not in encoder], "lr_scale": 1.0},
        {"params": [p for n, p in named if n in encoder], "lr_scale": float(scale)},
    ]


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's rate to ``lr`` times its ``lr_scale`` (1 when absent)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def _fold_number(name: str) -> int:
    tail = name.removeprefix("fold_")
    return int(tail) if tail.isdigit() else 1 << 30
