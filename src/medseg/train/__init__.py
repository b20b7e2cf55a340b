"""Training: networks, losses, patch sampling, augmentation, the trainer and the model folder.

The package import is light; the public names load their module on first use::

    from medseg.train import train_model, ModelFolder

See ``docs/train.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train_model": "medseg.train.api",
    "TrainResult": "medseg.train.api",
    "train_fold": "medseg.train.trainer",
    "FoldResult": "medseg.train.trainer",
    "ModelFolder": "medseg.train.model_folder",
    "save_model_folder": "medseg.train.model_folder",
    "save_fold": "medseg.train.model_folder",
    "ALL_FOLD": "medseg.train.model_folder",
    "build_network": "medseg.train.networks",
    "register_network": "medseg.train.networks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'medseg.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
