"""Preprocess a dataset into a memory-mappable cache, in parallel, skipping work already done.

Layout of ``cache_dir/<config_name>/`` (the trainer reads it through :class:`CaseCache`)::

    <case_id>_image.npy   float32 (C, Z, Y, X), preprocessed image (axes in Plan.transpose order)
    <case_id>_label.npy   uint8 or int16 (1, Z, Y, X), label map on the same grid
    <case_id>.json        CaseProperties fields + "foreground_locations": {label: [[z, y, x], ...]}
                          + "raters": number of rater label maps
    <case_id>_rater<k>_label.npy   label map of rater k, when several observers annotated
    manifest.json         plan hash + input file signature per case

A planar configuration stores the same 3D arrays; the 2D trainer samples slices along its plane.
A case is preprocessed again when its input files (path, size, modification time) change; every
case is when the preprocessing part of the plan (spacing, separate axis, normalisation, cropping)
changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import fields
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg import __version__
from medseg._atomic import atomic_path
from medseg._config import from_jsonable, read_json, to_jsonable, write_json
from medseg.data.dataset import Case, Dataset
from medseg.errors import DatasetError, MedsegError
from medseg.plan.cases import input_signature, plan_label_values, read_case, read_label
from medseg.plan.plan import Plan
from medseg.preprocess.case import CaseProperties, preprocess_case, preprocess_label

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
LOCATION_SEED = 1234
MAX_LOCATIONS = 10_000
"""Foreground voxels stored per label (at least 1% of the label's voxels, as nnU-Net)."""


class CaseCache:
    """Read access to one configuration's cache folder ``cache_dir/<config_name>``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        manifest = self.directory / "manifest.json"
        if not manifest.exists():
            raise DatasetError(
                f"{self.directory}: no manifest.json; run preprocess_dataset (medseg preprocess)"
            )
        self.manifest: dict[str, Any] = read_json(manifest)

    @property
    def case_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.manifest["cases"]))

    def load(
        self, case_id: str, *, mmap: bool = True
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.integer], CaseProperties]:
        """Image ``(C, Z, Y, X)``, label ``(1, Z, Y, X)`` (read-only memory maps) and properties."""
        self._check(case_id)
        mode = "r" if mmap else None
        image = np.load(self.directory / f"{case_id}_image.npy", mmap_mode=mode, allow_pickle=False)
        label = np.load(self.directory / f"{case_id}_label.npy", mmap_mode=mode, allow_pickle=False)
        return image, label, self.properties(case_id)

    def properties(self, case_id: str) -> CaseProperties:
        data = self._json(case_id)
        names = {f.name for f in fields(CaseProperties)}
        return from_jsonable(
            CaseProperties,
            {k: v for k, v in data.items() if k in names},
            source=str(self.directory / f"{case_id}.json"),
        )

    def rater_labels(self, case_id: str) -> list[npt.NDArray[np.integer]]:
        """The label map of each rater of a case, ``(1, Z, Y, X)`` memory maps ([] if none)."""
        count = int(self._json(case_id).get("raters", 0))
        return [
            np.load(self.directory / f"{case_id}_rater{k}_label.npy", mmap_mode="r")
            for k in range(count)
        ]

    def foreground_locations(self, case_id: str) -> dict[int, npt.NDArray[np.int64]]:
        """Sampled voxel coordinates per label value, each ``(N, 3)`` in (z, y, x) order."""
        data = self._json(case_id)["foreground_locations"]
        return {int(k): np.asarray(v, dtype=np.int64).reshape(-1, 3) for k, v in data.items()}

    def _json(self, case_id: str) -> dict[str, Any]:
        self._check(case_id)
        return read_json(self.directory / f"{case_id}.json")

    def _check(self, case_id: str) -> None:
        if case_id not in self.manifest["cases"]:
            raise DatasetError(f"{self.directory}: case {case_id!r} is not in the cache")


def preprocessing_hash(plan: Plan, config_name: str) -> str:
    """Hash of the plan settings that change preprocessed arrays (not epochs, patch...)."""
    config = plan.configuration(config_name)
    payload = {
        "format": CACHE_FORMAT,
        "name": config.name,
        "spacing": config.spacing,
        "separate_axis": config.separate_axis,
        "normalization": to_jsonable(plan.normalization),
        "crop_to_nonzero": plan.crop_to_nonzero,
        "transpose": plan.transpose,
    }
    if config.plane:  # a planar configuration keeps its slice axis unresampled
        payload["plane"] = config.plane
    return hashlib.sha256(json.dumps(to_jsonable(payload), sort_keys=True).encode()).hexdigest()[
        :16
    ]


def preprocess_dataset(
    dataset: Dataset,
    plan: Plan,
    config_name: str | None,
    cache_dir: Path,
    *,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    unlabelled: bool = False,
) -> CaseCache:
    """Preprocess every labelled case of ``dataset`` into ``cache_dir/<config_name>``.

    Parameters
    ----------
    dataset : Dataset
    plan : Plan
    config_name : str or None
        ``"3d"`` or ``"2d"``; the plan's default when ``None``.
    cache_dir : Path
    workers : int, optional
        Processes (one thread each); default: CPU cores - 1, at least 1. 1 runs in this process.
    on_progress : callable, optional
        ``on_progress(done, total)`` over the cases that needed work.
    unlabelled : bool
        Also preprocess the training cases without a label (semi-supervised training); their
        cached label map is all 0 and they have no foreground locations.

    Returns
    -------
    CaseCache

    Raises
    ------
    MedsegError
        If a case fails (the message names it) or a worker process dies (e.g. out of memory).
    """
    config = plan.configuration(config_name)
    out = Path(cache_dir) / config.name
    out.mkdir(parents=True, exist_ok=True)
    plan_hash = preprocessing_hash(plan, config.name)
    old = _read_manifest(out)
    old_cases = old.get("cases", {}) if old.get("plan_hash") == plan_hash else {}
    cases = dataset.cases if unlabelled else dataset.labelled
    signatures = {case.case_id: input_signature(case) for case in cases}
    todo = [
        case
        for case in cases
        if old_cases.get(case.case_id) != signatures[case.case_id]
        or not all((out / name).exists() for name in _files(case.case_id))
    ]
    for stale in set(old.get("cases", {})) - set(signatures):
        for name in _files(stale):
            (out / name).unlink(missing_ok=True)
    if todo:
        logger.info("preprocessing %d of %d cases into %s", len(todo), len(signatures), out)
        _run(todo, plan, config.name, out, workers, on_progress)
    else:
        logger.info("%s is current: nothing to preprocess", out)
    write_json(
        {
            "format": CACHE_FORMAT,
            "medseg_version": __version__,
            "plan_hash": plan_hash,
            "config_name": config.name,
            "cases": signatures,
        },
        out / "manifest.json",
    )
    return CaseCache(out)


def preprocess_to_cache(case: Case, plan: Plan, config_name: str, out: Path) -> str:
    """Preprocess one case and write its three files atomically; returns the case ID."""
    allowed = plan_label_values(plan.labels, plan.regions, plan.ignore_label)
    image, label = read_case(case, allowed)
    array, lab, props = preprocess_case(image, label, plan, config_name, case_id=case.case_id)
    for k, path in enumerate(case.rater_paths):  # several raters: one label map each
        rater = read_label(path, image, allowed, image_path=case.image_paths[0])
        _save_npy(preprocess_label(rater, props), out / f"{case.case_id}_rater{k}_label.npy")
    if lab is None:  # an unlabelled case (semi-supervised training)
        lab = np.zeros((1, *array.shape[1:]), dtype=np.uint8)
    payload = to_jsonable(props)
    payload["foreground_locations"] = foreground_locations(lab[0])
    payload["raters"] = len(case.rater_paths)
    _save_npy(array, out / f"{case.case_id}_image.npy")
    _save_npy(lab, out / f"{case.case_id}_label.npy")
    write_json(payload, out / f"{case.case_id}.json")
    return case.case_id


def foreground_locations(
    label: npt.NDArray[np.integer], *, max_samples: int = MAX_LOCATIONS, seed: int = LOCATION_SEED
) -> dict[str, list[list[int]]]:
    """Up to ``max_samples`` (at least 1%) voxel coordinates per nonzero label, drawn with ``seed``.

    Parameters
    ----------
    label : ndarray of int, shape (Z, Y, X)

    Returns
    -------
    dict
        Label value (as a JSON key) -> list of ``[z, y, x]``.
    """
    rng = np.random.default_rng(seed)
    result: dict[str, list[list[int]]] = {}
    for value in np.unique(label):
        if value == 0:
            continue
        coords = np.argwhere(label == value)
        n = max(min(max_samples, len(coords)), math.ceil(len(coords) * 0.01))
        picks = coords[np.sort(rng.choice(len(coords), size=n, replace=False))]
        result[str(int(value))] = picks.tolist()
    return result


def default_workers() -> int:
    """CPU cores available to this process, minus one, at least one."""
    has_affinity = hasattr(os, "sched_getaffinity")
    cores = len(os.sched_getaffinity(0)) if has_affinity else (os.cpu_count() or 1)
    return max(1, cores - 1)


def _run(todo, plan, config_name, out, workers, on_progress) -> None:
    workers = min(workers or default_workers(), len(todo))
    if workers == 1:
        for done, case in enumerate(todo, start=1):
            _one(case, plan, config_name, out)
            if on_progress is not None:
                on_progress(done, len(todo))
        return
    context = get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        futures = {pool.submit(_one, case, plan, config_name, out): case for case in todo}
        pending = {case.case_id for case in todo}
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()
                pending.discard(futures[future].case_id)
                if on_progress is not None:
                    on_progress(done, len(todo))
        except BrokenProcessPool as err:
            raise MedsegError(
                f"a preprocessing worker died (out of memory?) with cases {sorted(pending)} "
                "unfinished; run again with fewer workers (--workers 1)"
            ) from err


def _one(case: Case, plan: Plan, config_name: str, out: Path) -> str:
    try:
        return preprocess_to_cache(case, plan, config_name, out)
    except MedsegError as err:
        raise type(err)(f"case {case.case_id}: {err}") from err


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _save_npy(array: npt.NDArray, path: Path) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(array), allow_pickle=False)


def _files(case_id: str) -> tuple[str, ...]:
    return (f"{case_id}_image.npy", f"{case_id}_label.npy", f"{case_id}.json")


def _read_manifest(out: Path) -> dict[str, Any]:
    path = out / "manifest.json"
    if not path.exists():
        return {}
    try:
        return read_json(path)
    except MedsegError:
        logger.warning("%s is unreadable; rebuilding the cache", path)
        return {}
