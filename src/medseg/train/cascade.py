"""The cascade's full-resolution stage: the low-resolution segmentation as extra input channels.

nnU-Net's ``3d_cascade_fullres`` (after the coarse-to-fine cascades of DeepOrgan, Roth et al.
2015) trains a full-resolution network on the image plus the one-hot segmentation of the
``3d_lowres`` stage, one channel per foreground label (docs/methods.md, "Cascade"):

- :func:`cache_previous_stage` predicts every cached training case with the low-resolution
  model and stores the label map on the full-resolution grid beside the case
  (``<case_id>_previous.npy``, uint8 ``(1, Z, Y, X)``). A case is predicted by the fold that did
  not train on it (out-of-fold, as nnU-Net's cross-validation predictions), else by the model
  trained on all cases (``fold_all``), else by the trained folds together (logged: these cases
  were seen in training, so their segmentation is better than at test time).
- :class:`CascadeSource` hands the sampler and the validation the image with those channels
  appended, cut lazily from the memory maps (never a full one-hot volume in memory).
- :class:`medseg.train.cascade_augment.RandPerturbPreviousd` degrades the channels in training
  as nnU-Net does, so the network does not trust them blindly: morphological operators (p 0.4
  per sample) and removal of a small connected component (p 0.2 per sample).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from monai.inferers import sliding_window_inference

from medseg._atomic import atomic_path
from medseg._config import read_json, write_json
from medseg.data.dataset import Dataset
from medseg.errors import ConfigError, DatasetError, MedsegError
from medseg.plan.plan import Plan, cascade_labels
from medseg.preprocess.cache import CaseCache, preprocess_dataset
from medseg.preprocess.case import outputs_to_labels
from medseg.preprocess.resample import resampled_slabs
from medseg.train.model_folder import ALL_FOLD, WEIGHTS_NAME, ModelFolder, fold_dir
from medseg.train.networks import output_list

logger = logging.getLogger(__name__)

PREVIOUS_SUFFIX = "_previous.npy"
STATE_NAME = "previous_stage.json"


class CascadeError(MedsegError):
    """A cascade stage cannot be trained or applied as asked."""


def load_previous_stage(
    path: Path | str, plan: Plan | None = None, config_name: str = "3d_cascade_fullres"
) -> ModelFolder:
    """The trained low-resolution model the cascade configuration ``config_name`` needs.

    With ``plan`` (the cascade's), the model must have its labels and be the configuration the
    plan names as ``previous_stage``.

    Raises
    ------
    CascadeError
        No trained model at ``path`` (the message names the command that trains it), or one
        whose labels or configuration do not fit.
    """
    config = None if plan is None else plan.configuration(config_name)
    previous = (config.previous_stage if config else None) or "3d_lowres"
    command = f"medseg train DATASET -o {path} --config {previous} --folds 0,1,2,3,4"
    try:
        model = ModelFolder.load(path)
    except MedsegError as err:
        raise CascadeError(
            f"{config_name} needs a trained {previous} model at {path} ({err}); run "
            f"`{command}` first (all folds: each training case gets an out-of-fold prediction)"
        ) from err
    labels = model.plan.labels if plan is None else plan.labels
    if model.plan.labels != labels or model.configuration_name != previous:
        raise CascadeError(
            f"{path}: a {model.configuration_name} model with labels {model.plan.labels}, but "
            f"{config_name} needs {previous} with labels {labels}; run `{command}`"
        )
    return model


def resolve_previous_stage(
    out: Path, plan: Plan, config_name: str, given: Path | str | None
) -> ModelFolder | None:
    """The previous stage of a cascade configuration: ``given``, or the one ``out`` records.

    ``None`` for a configuration without ``previous_stage``.

    Raises
    ------
    ConfigError
        ``given`` for a configuration that takes no previous stage.
    CascadeError
        A cascade configuration without a trained previous stage (naming the commands to run).
    """
    config = plan.configuration(config_name)
    if config.previous_stage is None:
        if given is not None:
            raise ConfigError(
                f"previous_stage is only for a cascade configuration (3d_cascade_fullres); "
                f"{config_name} takes no previous stage"
            )
        return None
    where = given
    if where is None and (out / "model.json").is_file():
        where = _recorded_previous(out)
    if where is None:
        raise CascadeError(
            f"{config_name} takes the segmentation of a trained {config.previous_stage} model: "
            f"train it first (`medseg train DATASET -o LOWRES --config {config.previous_stage} "
            f"--folds 0,1,2,3,4`), then pass it (`medseg train DATASET -o {out} --config "
            f"{config_name} --previous-stage LOWRES`)"
        )
    return load_previous_stage(where, plan, config_name)


def _recorded_previous(out: Path) -> Path | None:
    """The previous-stage folder ``out/model.json`` records, if any."""
    relative = read_json(out / "model.json").get("previous_stage")
    return None if relative is None else (out / relative).resolve()


def cache_previous_stage(
    directory: Path,
    lowres: CaseCache,
    previous: ModelFolder,
    case_ids: Sequence[str],
    shapes: Mapping[str, Sequence[int]],
    *,
    separate_axis: int | None,
    device: torch.device,
    inputs: Mapping[str, Any] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, str]:
    """Predict ``case_ids`` with the previous stage and store the labels on the full grid.

    Parameters
    ----------
    directory : Path
        The full-resolution cache folder; receives ``<case_id>_previous.npy`` and
        ``previous_stage.json`` (which fold predicted each case, and a stamp of the model).
    lowres : CaseCache
        The same cases preprocessed for the previous stage's configuration.
    previous : ModelFolder
        The trained previous stage.
    case_ids : sequence of str
    shapes : mapping of str to tuple of int
        Each case's spatial shape on the full-resolution grid (z, y, x).
    separate_axis : int or None
        Axis resampled with order 0 from the low-resolution grid (the configuration's).
    device : torch.device
    inputs : mapping, optional
        A signature of each case's input files (the cache manifest's): a case whose signature
        changed is predicted again, as is every case when the previous stage's weights change.

    Returns
    -------
    dict
        Case ID -> which fold(s) predicted it.
    """
    state_path = Path(directory) / STATE_NAME
    stamp = _model_stamp(previous)
    old = read_json(state_path) if state_path.is_file() else {}
    done = old.get("cases", {}) if old.get("model") == stamp else {}
    inputs = dict(inputs or {})
    old_inputs = old.get("inputs", {})
    splits = _splits(previous)
    todo = [
        c
        for c in case_ids
        if c not in done
        or old_inputs.get(c) != inputs.get(c)
        or not (Path(directory) / f"{c}{PREVIOUS_SUFFIX}").is_file()
    ]
    sources = {c: done[c] for c in case_ids if c in done and c not in todo}
    networks: dict[int, torch.nn.Module] = {}
    regions = tuple(previous.plan.region_order) if previous.plan.regions else None
    for index, case_id in enumerate(todo, start=1):
        folds, why = _folds_for(case_id, previous.folds, splits)
        if why.startswith("in-sample"):
            logger.warning("%s: no out-of-fold model; predicted by folds %s", case_id, folds)
        for fold in folds:
            if fold not in networks:
                networks[fold] = previous.build_network(fold, device)
        image = np.array(lowres.load(case_id, mmap=True)[0], dtype=np.float32)
        logits = _mean_logits([networks[f] for f in folds], image, previous, device)
        labels = _labels_on_grid(logits, tuple(shapes[case_id]), separate_axis, regions)
        with atomic_path(Path(directory) / f"{case_id}{PREVIOUS_SUFFIX}") as tmp:
            np.save(tmp, labels[None], allow_pickle=False)
        sources[case_id] = why
        if on_progress is not None:
            on_progress(index, len(todo))
    known = {c: inputs[c] for c in case_ids if c in inputs}
    write_json({"model": stamp, "cases": sources, "inputs": known}, state_path)
    return sources


class CascadeSource:
    """A case cache whose images carry the previous stage's one-hot labels as extra channels.

    ``load`` returns ``(image, label, properties)`` like ``CaseCache.load``, the image a
    :class:`StackedChannels` of shape ``(C + L, Z, Y, X)`` (``L`` = foreground labels); every
    other attribute is the wrapped cache's.
    """

    def __init__(self, cache: Any, labels: Sequence[int]) -> None:
        self.cache = cache
        self.labels = tuple(labels)

    def load(self, case_id: str, mmap: bool = True) -> tuple[Any, np.ndarray, Any]:
        image, label, props = self.cache.load(case_id, mmap=mmap)
        path = Path(self.cache.directory) / f"{case_id}{PREVIOUS_SUFFIX}"
        if not path.is_file():
            raise DatasetError(f"{path}: previous-stage labels missing; train the cascade again")
        previous = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        return StackedChannels(image, previous, self.labels), label, props

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "cache":  # unpickling in a worker: no recursion
            raise AttributeError(name)
        return getattr(self.cache, name)


class StackedChannels:
    """``image`` ``(C, Z, Y, X)`` with the one-hot of ``previous`` ``(1, Z, Y, X)`` appended.

    Indexing must keep every channel (``x[:, z0:z1, ...]``); only the indexed region is read and
    one-hot encoded (float32, channel ``C + i`` is ``previous == labels[i]``).
    """

    def __init__(self, image: np.ndarray, previous: np.ndarray, labels: Sequence[int]) -> None:
        if tuple(previous.shape[1:]) != tuple(image.shape[1:]):
            raise DatasetError(
                f"previous-stage labels have shape {previous.shape[1:]}, the image "
                f"{image.shape[1:]}; train the cascade again to refresh them"
            )
        self.image, self.previous, self.labels = image, previous, tuple(labels)
        self.shape = (int(image.shape[0]) + len(self.labels), *image.shape[1:])
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> npt.NDArray[np.float32]:
        key = key if isinstance(key, tuple) else (key,)
        if key and key[0] != slice(None):
            raise IndexError("StackedChannels: index every channel (x[:, ...])")
        rest = key[1:]
        image = np.asarray(self.image[(slice(None), *rest)], dtype=np.float32)
        previous = np.asarray(self.previous[(0, *rest)])
        return np.concatenate([image, one_hot(previous, self.labels)])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        full = self[(slice(None),)]
        return full if dtype is None else full.astype(dtype)


def one_hot(labels: np.ndarray, values: Sequence[int]) -> npt.NDArray[np.float32]:
    """``(len(values), *labels.shape)`` float32: channel ``i`` is ``labels == values[i]``."""
    return (
        np.stack([labels == v for v in values])
        .astype(np.float32)
        .reshape(len(values), *labels.shape)
    )


@torch.no_grad()
def _mean_logits(
    networks: Sequence[torch.nn.Module], image: np.ndarray, model: ModelFolder, device: torch.device
) -> torch.Tensor:
    """Mean network output over ``networks`` on a whole preprocessed image, ``(K, z, y, x)``."""
    patch = tuple(model.config.patch_size)
    x = torch.from_numpy(image)[None].to(device)
    total = None
    for net in networks:

        def predict(tile: torch.Tensor, net: torch.nn.Module = net) -> torch.Tensor:
            return output_list(net(tile), 3)[0].float()

        logits = sliding_window_inference(
            x, roi_size=patch, sw_batch_size=4, predictor=predict, overlap=0.5,
            mode="gaussian", sigma_scale=0.125,
        )[0]  # fmt: skip
        total = logits if total is None else total + logits
    assert total is not None
    return (total / len(networks)).cpu()


def _labels_on_grid(
    logits: torch.Tensor,
    shape: tuple[int, ...],
    separate_axis: int | None,
    region_order: Sequence[int] | None = None,
) -> npt.NDArray[np.uint8]:
    """Label map of ``shape`` from low-resolution outputs, resampled slab by slab.

    Softmax outputs: the argmax channel; region outputs (``region_order``): each region's label
    painted where its logit is positive, later regions over earlier ones.
    """
    out = np.zeros(shape, np.uint8)
    axis = 0 if separate_axis is None else separate_axis
    moved = np.moveaxis(out, axis, 0)
    for start, stop, values in resampled_slabs(logits, shape, separate_axis=separate_axis):
        moved[start:stop] = outputs_to_labels(values, region_order).numpy()
    return out


def _folds_for(
    case_id: str, trained: Sequence[int], splits: Sequence[Mapping[str, Sequence[str]]]
) -> tuple[list[int], str]:
    for fold, split in enumerate(splits):
        if fold in trained and case_id in split.get("val", ()):
            return [fold], f"out-of-fold: fold {fold}"
    if ALL_FOLD in trained:
        return [ALL_FOLD], "fold_all (trained on every case)"
    return list(trained), f"in-sample: folds {list(trained)} (no fold left it out)"


def _splits(model: ModelFolder) -> list[dict[str, Any]]:
    path = model.path / "splits_final.json"
    if not path.is_file():
        return []
    data = read_json(path)
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of splits")
    return data


def _model_stamp(model: ModelFolder) -> str:
    """Changes when the previous stage's weights or plan change."""
    parts = [str(model.path.resolve()), (model.path / "model.json").read_text()]
    for fold in model.folds:
        stat = (fold_dir(model.path, fold) / WEIGHTS_NAME).stat()
        parts.append(f"{fold}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def cascade_source(
    dataset: Dataset,
    cache: CaseCache,
    plan: Plan,
    config_name: str,
    previous: ModelFolder,
    *,
    device: torch.device,
    unlabelled: bool = False,
) -> CascadeSource:
    """The cached cases of a cascade stage, with the previous stage's labels as channels.

    Preprocesses the cases for the previous stage (``<cache root>/<its configuration>``),
    predicts them with it (:func:`cache_previous_stage`) and wraps ``cache``.

    Raises
    ------
    DatasetError
        The previous stage crops or orders the axes of a case differently (its plan differs).
    """
    lowres = preprocess_dataset(
        dataset,
        previous.plan,
        previous.configuration_name,
        Path(cache.directory).parent,
        unlabelled=unlabelled,
    )
    shapes = {}
    for case_id in cache.case_ids:
        full, low = cache.properties(case_id), lowres.properties(case_id)
        if (full.bbox, full.transpose) != (low.bbox, low.transpose):
            raise DatasetError(
                f"case {case_id}: the previous stage ({previous.path}) crops or orders the axes "
                "differently; train it with the same plan (medseg train --plan)"
            )
        shapes[case_id] = full.shape_after_resampling
    sources = cache_previous_stage(
        Path(cache.directory),
        lowres,
        previous,
        cache.case_ids,
        shapes,
        separate_axis=plan.configuration(config_name).separate_axis,
        device=device,
        inputs=cache.manifest["cases"],
    )
    logger.info("previous-stage labels: %s", sources)
    return CascadeSource(cache, cascade_labels(plan))
