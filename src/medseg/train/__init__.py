"""Training: networks, losses, patch sampling, augmentation, the trainer and the model folder.

The package import is light; the public names load their module on first use::

    from medseg.train import train_model, ModelFolder

See ``docs/train.md``.
"""

from __future__ import annotations

from medseg._lazy import lazy_getattr

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

__getattr__ = lazy_getattr(__name__, _EXPORTS)
