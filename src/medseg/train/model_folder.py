"""The trained-model folder: readable JSON, safetensors weights, nothing executable.

Layout::

    model/
      model.json           format and medseg version, labels, channels, configuration, folds,
                           plan hash, cross-validation metrics; a cascade stage also the path of
                           its previous stage's model folder (``previous_stage``, relative)
      plan.json            the plan the model was trained with
      dataset.json         labels, regions, ignore label, channel names, file ending
      fingerprint.json     dataset fingerprint (optional)
      splits_final.json    cross-validation splits (written by the trainer)
      postprocessing.json  optional, written by the inference stage
      fold_0/model.safetensors  fold_0/val_metrics.json  fold_0/log.csv  fold_0/progress.png
      fold_all/...         a model trained on every case (fold number ``ALL_FOLD``)

Loading never unpickles: JSON is parsed and validated, weights are read with
``safetensors.torch.load_file``. Anything missing, corrupt or written by an incompatible medseg
version raises :class:`~medseg.errors.ModelFormatError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from medseg import __version__
from medseg._atomic import atomic_path
from medseg._config import from_jsonable, to_jsonable, write_json
from medseg.errors import ConfigError, ModelFormatError
from medseg.plan.plan import Configuration, Plan

FORMAT_VERSION = 1
"""Version of the folder layout; bumped on any incompatible change."""
ALL_FOLD = -1
"""Fold number of a model trained on all cases (folder ``fold_all``)."""
WEIGHTS_NAME = "model.safetensors"


def fold_dir(model_dir: Path, fold: int) -> Path:
    """``model_dir/fold_<k>``, or ``model_dir/fold_all`` for :data:`ALL_FOLD`."""
    return Path(model_dir) / ("fold_all" if fold == ALL_FOLD else f"fold_{fold}")


@dataclass(frozen=True, kw_only=True)
class ModelFolder:
    """A loaded, validated model folder (see the module docstring for the layout).

    Attributes
    ----------
    path : Path
        The folder.
    plan : Plan
        The training plan.
    configuration_name : str
        Which plan configuration (``"2d"`` or ``"3d"``) the weights belong to.
    folds : list of int
        Folds whose weights exist, sorted (:data:`ALL_FOLD` for a model trained on all cases).
    info : dict
        The parsed ``model.json``.
    fingerprint : dict or None
        The parsed ``fingerprint.json`` if present.
    postprocessing : dict
        The parsed ``postprocessing.json``, ``{}`` if absent.
    """

    path: Path
    plan: Plan
    configuration_name: str
    folds: list[int]
    info: dict[str, Any]
    fingerprint: dict[str, Any] | None
    postprocessing: dict[str, Any]

    @property
    def config(self) -> Configuration:
        """The trained :class:`Configuration`."""
        return self.plan.configuration(self.configuration_name)

    @property
    def labels(self) -> dict[str, int]:
        """Label name -> value, background included."""
        return dict(self.plan.labels)

    @property
    def channel_names(self) -> dict[int, str]:
        """Input channel index -> modality name."""
        return dict(self.plan.channel_names)

    @property
    def previous_stage(self) -> Path | None:
        """The model folder of a cascade's previous stage (``None`` for a single stage)."""
        relative = self.info.get("previous_stage")
        return None if relative is None else (self.path / relative).resolve()

    @property
    def cv_metrics(self) -> dict[str, Any]:
        """Cross-validation metrics recorded in ``model.json`` (may be empty)."""
        return dict(self.info.get("cv_metrics", {}))

    @classmethod
    def load(cls, path: Path | str) -> ModelFolder:
        """Read and validate a model folder.

        Raises
        ------
        ModelFormatError
            Missing or malformed ``model.json``/``plan.json``, an incompatible format or medseg
            version, a plan edited after training, or no fold with weights.
        """
        path = Path(path)
        if not path.is_dir():
            raise ModelFormatError(f"{path}: model folder not found")
        info = _read_json(path / "model.json")
        if not isinstance(info, dict):
            raise ModelFormatError(f"{path / 'model.json'}: expected a JSON object")
        _check_version(info, path / "model.json")
        plan_path = path / "plan.json"
        plan_data = _read_json(plan_path)
        try:
            plan = from_jsonable(Plan, plan_data, source=str(plan_path))
        except ConfigError as err:
            raise ModelFormatError(f"{plan_path}: invalid plan ({err})") from err
        # the stored plan.json as written (a plan from an older medseg lacks newer fields, which
        # take their defaults, so its hash is the one of the file, not of the loaded plan)
        if info.get("plan_sha256") not in (None, _plan_hash(plan), _json_hash(plan_data)):
            raise ModelFormatError(
                f"{plan_path}: plan differs from the one the model was trained with; "
                "restore it or retrain"
            )
        name = info.get("configuration")
        if not isinstance(name, str) or name not in plan.configurations:
            raise ModelFormatError(
                f"{path / 'model.json'}: configuration {name!r} is not in plan.json"
            )
        listed = info.get("folds", [])
        if not isinstance(listed, list) or not all(isinstance(f, int) for f in listed):
            raise ModelFormatError(f"{path / 'model.json'}: 'folds' must be a list of integers")
        folds = sorted(f for f in listed if (fold_dir(path, f) / WEIGHTS_NAME).is_file())
        if not folds:
            raise ModelFormatError(
                f"{path}: no trained fold has weights ({WEIGHTS_NAME} missing in "
                f"{[fold_dir(path, f).name for f in listed] or 'fold_*'}); train the model first"
            )
        fingerprint_path = path / "fingerprint.json"
        fingerprint = _read_json(fingerprint_path) if fingerprint_path.is_file() else None
        post_path = path / "postprocessing.json"
        postprocessing = _read_json(post_path) if post_path.is_file() else {}
        return cls(
            path=path,
            plan=plan,
            configuration_name=name,
            folds=folds,
            info=info,
            fingerprint=fingerprint,
            postprocessing=postprocessing,
        )

    def build_network(self, fold: int, device: torch.device | str = "cpu") -> nn.Module:
        """The network of ``fold`` with its weights, in eval mode on ``device``.

        Raises
        ------
        ModelFormatError
            The fold has no weights, or they are corrupt or do not fit the plan's network.
        """
        from medseg.train.networks import build_network

        if fold not in self.folds:
            raise ModelFormatError(
                f"{self.path}: fold {fold} has no weights (trained folds: {self.folds})"
            )
        config = self.config
        net = build_network(
            config.network,
            in_channels=self.plan.input_channels(self.configuration_name),
            out_channels=self.plan.num_classes,
            ndim=len(config.patch_size),
            patch_size=config.patch_size,
        )
        load_weights(net, fold_dir(self.path, fold) / WEIGHTS_NAME)
        return net.to(device).eval()

    def val_metrics(self, fold: int) -> dict[str, Any]:
        """The parsed ``fold_k/val_metrics.json`` (``{}`` if absent)."""
        path = fold_dir(self.path, fold) / "val_metrics.json"
        return _read_json(path) if path.is_file() else {}


def load_weights(net: nn.Module, path: Path) -> None:
    """Load safetensors weights into ``net`` (strict), raising ModelFormatError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: weights file not found")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFormatError(f"{path}: corrupt safetensors file ({err})") from err
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise ModelFormatError(f"{path}: weights do not fit the plan's network ({first})") from err


def save_weights(net_or_state: nn.Module | dict[str, torch.Tensor], path: Path) -> None:
    """Write weights as safetensors atomically (contiguous CPU copies)."""
    state = net_or_state.state_dict() if isinstance(net_or_state, nn.Module) else net_or_state
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    _atomic(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))


def save_model_folder(
    path: Path | str,
    plan: Plan,
    *,
    configuration: str,
    file_ending: str = ".nii.gz",
    fingerprint: Any = None,
    previous_stage: Path | str | None = None,
) -> Path:
    """Create (or refresh) a model folder's JSON files for ``plan``; folds are added later.

    Parameters
    ----------
    path : Path
        The model folder, created if missing.
    plan : Plan
        The plan the model is trained with.
    configuration : str
        Name of the trained configuration in ``plan``.
    file_ending : str
        The dataset's image file ending (recorded in ``dataset.json``).
    fingerprint : dataclass or dict, optional
        Written to ``fingerprint.json`` when given.
    previous_stage : Path, optional
        A cascade stage's previous-stage model folder, recorded relative to ``path``.

    Returns
    -------
    Path
        The folder.
    """
    path = Path(path)
    plan.configuration(configuration)
    path.mkdir(parents=True, exist_ok=True)
    write_json(plan, path / "plan.json")
    write_json(
        {
            "labels": plan.labels,
            "regions": plan.regions,
            "region_order": plan.region_order,
            "ignore_label": plan.ignore_label,
            "channel_names": plan.channel_names,
            "file_ending": file_ending,
        },
        path / "dataset.json",
    )
    if fingerprint is not None:
        write_json(fingerprint, path / "fingerprint.json")
    old = _read_json(path / "model.json") if (path / "model.json").is_file() else {}
    same = old.get("configuration") == configuration and old.get("plan_sha256") == _plan_hash(plan)
    previous = None if previous_stage is None else os.path.relpath(previous_stage, path)
    _write_model_json(
        path,
        plan,
        configuration,
        folds=old.get("folds", []) if same else [],
        cv_metrics=old.get("cv_metrics", {}) if same else {},
        previous_stage=previous,
    )
    return path


def save_fold(
    path: Path | str,
    fold: int,
    weights: nn.Module | dict[str, torch.Tensor],
    *,
    val_metrics: dict[str, Any] | None = None,
) -> Path:
    """Write a finished fold's weights (and metrics) and register it in ``model.json``.

    ``val_metrics`` is expected as ``{"dice": {class_name: float}, "mean_dice": float, ...}``;
    ``model.json``'s ``cv_metrics`` becomes the mean over the registered folds' ``dice``.
    Returns the fold folder.
    """
    path = Path(path)
    info = _read_json(path / "model.json")
    plan = from_jsonable(Plan, _read_json(path / "plan.json"), source=str(path / "plan.json"))
    out = fold_dir(path, fold)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(weights, out / WEIGHTS_NAME)
    if val_metrics is not None:
        write_json(_finite(val_metrics), out / "val_metrics.json")
    folds = sorted(set(info.get("folds", [])) | {fold})
    _write_model_json(
        path,
        plan,
        info["configuration"],
        folds=folds,
        cv_metrics=_cv_metrics(path, folds),
        previous_stage=info.get("previous_stage"),
    )
    return out


def _cv_metrics(path: Path, folds: list[int]) -> dict[str, Any]:
    per_class: dict[str, list[float]] = {}
    for fold in folds:
        metrics_path = fold_dir(path, fold) / "val_metrics.json"
        if fold == ALL_FOLD or not metrics_path.is_file():
            continue
        for name, value in _read_json(metrics_path).get("dice", {}).items():
            if value is not None:
                per_class.setdefault(name, []).append(float(value))
    if not per_class:
        return {}
    dice = {name: sum(v) / len(v) for name, v in per_class.items()}
    return {"dice": dice, "mean_dice": sum(dice.values()) / len(dice)}


def _write_model_json(
    path: Path,
    plan: Plan,
    configuration: str,
    *,
    folds: list[int],
    cv_metrics: dict,
    previous_stage: str | None = None,
) -> None:
    extra = {} if previous_stage is None else {"previous_stage": previous_stage}
    write_json(
        {
            **extra,
            "format_version": FORMAT_VERSION,
            "medseg_version": __version__,
            "configuration": configuration,
            "labels": plan.labels,
            "channel_names": plan.channel_names,
            "num_classes": plan.num_classes,
            "folds": folds,
            "plan_sha256": _plan_hash(plan),
            "cv_metrics": cv_metrics,
        },
        path / "model.json",
    )


def _plan_hash(plan: Plan) -> str:
    return _json_hash(to_jsonable(plan))


def _json_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _check_version(info: dict, where: Path) -> None:
    fmt = info.get("format_version")
    if fmt != FORMAT_VERSION:
        raise ModelFormatError(
            f"{where}: model format version {fmt!r} is not supported by medseg {__version__} "
            f"(expects {FORMAT_VERSION})"
        )
    version = info.get("medseg_version")
    theirs = _major_minor(version)
    ours = _major_minor(__version__)
    if theirs is None or theirs[0] != ours[0] or theirs > ours:
        raise ModelFormatError(
            f"{where}: written by medseg {version!r}, incompatible with installed medseg "
            f"{__version__}; upgrade medseg or retrain"
        )


def _major_minor(version: Any) -> tuple[int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)", version) if isinstance(version, str) else None
    return (int(match[1]), int(match[2])) if match else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise ModelFormatError(f"{path}: missing from the model folder") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFormatError(f"{path}: not valid JSON ({err})") from err


def _finite(obj: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _atomic(path: Path, write) -> None:
    with atomic_path(path) as tmp:
        write(tmp)
