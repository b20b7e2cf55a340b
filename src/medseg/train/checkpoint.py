"""Per-epoch training checkpoints without pickle: safetensors for tensors, JSON for the rest.

A checkpoint is a folder ``checkpoint_e<epochs done>/`` holding ``weights.safetensors``,
``optimizer.safetensors`` (every tensor of the optimizer state, keyed ``"<param>.<name>"``) and
``state.json`` (epoch, optimizer hyper-parameters, scalar state, the log so far). The pointer file
``checkpoint.json`` names the latest complete checkpoint and is replaced atomically after the
folder is written, so a kill at any moment leaves a usable checkpoint; older folders are then
removed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from medseg._config import write_json
from medseg.errors import ModelFormatError

POINTER = "checkpoint.json"


def save_checkpoint(
    fold_path: Path,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> Path:
    """Write a checkpoint for ``state["epoch"]`` epochs done and point ``checkpoint.json`` at it.

    Parameters
    ----------
    fold_path : Path
        The fold folder.
    net, optimizer
        Their state dicts are saved.
    state : dict
        JSON-serialisable training state; must contain ``"epoch"`` (epochs completed).
    """
    fold_path = Path(fold_path)
    name = f"checkpoint_e{int(state['epoch'])}"
    folder = fold_path / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(weights, str(folder / "weights.safetensors"))
    opt_state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, entry in opt_state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    save_file(tensors, str(folder / "optimizer.safetensors"))
    write_json(
        {**state, "optimizer_groups": opt_state["param_groups"], "optimizer_scalars": scalars},
        folder / "state.json",
    )
    write_json({"latest": name}, fold_path / POINTER)
    for old in fold_path.glob("checkpoint_e*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return folder


def load_checkpoint(
    fold_path: Path, net: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any] | None:
    """Restore the latest checkpoint into ``net`` and ``optimizer``; ``None`` if there is none.

    Returns
    -------
    dict or None
        The saved ``state`` (without the optimizer entries).

    Raises
    ------
    ModelFormatError
        The pointer names a missing or corrupt checkpoint.
    """
    pointer = Path(fold_path) / POINTER
    if not pointer.is_file():
        return None
    try:
        folder = Path(fold_path) / json.loads(pointer.read_text())["latest"]
        state = json.loads((folder / "state.json").read_text())
        weights = load_file(str(folder / "weights.safetensors"))
        tensors = load_file(str(folder / "optimizer.safetensors"))
    except (OSError, KeyError, TypeError, json.JSONDecodeError, SafetensorError) as err:
        raise ModelFormatError(
            f"{pointer}: checkpoint unreadable ({err}); pass resume=False to start over"
        ) from err
    net.load_state_dict(weights)
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        param_id, name = key.split(".", 1)
        opt_state.setdefault(int(param_id), {})[name] = value
    for param_id, entry in state.pop("optimizer_scalars").items():
        opt_state.setdefault(int(param_id), {}).update(entry)
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("optimizer_groups")})
    return state


def remove_checkpoints(fold_path: Path) -> None:
    """Delete the checkpoint folders and pointer (after the final weights are written)."""
    fold_path = Path(fold_path)
    (fold_path / POINTER).unlink(missing_ok=True)
    for folder in fold_path.glob("checkpoint_e*"):
        shutil.rmtree(folder, ignore_errors=True)
