"""Batch prediction on Ray: a pool of actors, each holding one loaded model, over many cases.

The driver (the process calling :func:`predict_with_ray`) finds the cases, skips those its
manifest (:mod:`medseg.scale.manifest`) marks done, and hands the rest one at a time to
``workers`` Ray actors. Each actor loads the model once (``num_cpus``/``num_gpus`` per actor
as asked), then reads, predicts and writes one case per call with the same code as
``medseg predict`` (every file atomic, the label map last). A case that fails, or whose
worker dies, is recorded with its reason and the others go on; Ray restarts a dead worker once.
Without an address Ray starts on this machine; with one (``ray://head:10001`` or ``auto``) the
job joins that cluster, and the model folder, inputs and output folder must then be paths
every node sees (shared storage).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medseg._typing import PathLikeStr
from medseg.errors import ConfigError, ImageWriteError, MedsegError
from medseg.infer.files import CaseFailure, CaseOutput
from medseg.infer.inputs import InputCase, require_inputs
from medseg.infer.prediction import ProgressFn
from medseg.scale.manifest import Manifest
from medseg.scale.onnx_export import require
from medseg.scale.onnx_runtime import RUNTIMES
from medseg.train.model_folder import ModelFolder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerStats:
    """One Ray worker: where it ran, the cases it finished and its peak resident memory (MiB)."""

    worker: str
    cases: int
    peak_rss_mib: float


@dataclass(frozen=True)
class BatchReport:
    """Outcome of :func:`predict_with_ray`, in input order.

    ``outputs``/``failures`` cover the cases this run worked on; ``skipped`` lists the case IDs
    the manifest already had done; ``workers`` the per-worker statistics of this run.
    """

    outputs: list[CaseOutput]
    failures: list[CaseFailure]
    skipped: list[str] = field(default_factory=list)
    workers: list[WorkerStats] = field(default_factory=list)
    manifest: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


class CaseWorker:
    """The Ray actor body: one model load, then one case per :meth:`predict` call.

    Parameters
    ----------
    model_dir : str
        The model folder (a path this worker's node sees).
    runtime : str
        ``"torch"`` or ``"onnx"``.
    predictor_kwargs : dict
        Keyword arguments of :class:`~medseg.infer.Predictor`.
    threads : int
        Torch (and onnxruntime) threads in this worker.
    onnx_models : dict of int to bytes, optional
        Folds already exported by the driver (``runtime="onnx"``).
    """

    def __init__(
        self,
        model_dir: str,
        runtime: str,
        predictor_kwargs: dict[str, Any],
        threads: int,
        onnx_models: dict[int, bytes] | None = None,
    ) -> None:
        import torch

        from medseg.scale.onnx_runtime import make_predictor

        torch.set_num_threads(threads)
        extra: dict[str, Any] = {"threads": threads, "onnx_models": onnx_models or {}}
        self.predictor = make_predictor(
            model_dir, runtime=runtime, **predictor_kwargs, **(extra if runtime == "onnx" else {})
        )
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.cases = 0

    def predict(self, case: dict[str, Any], out_dir: str, outputs: dict[str, bool]) -> dict:
        """Predict and write one case; returns a plain record, never raises for a bad case."""
        from medseg.infer.files import predict_case

        start = time.perf_counter()
        record: dict[str, Any] = {"case_id": case["case_id"], "worker": self.name}
        try:
            written = predict_case(self.predictor, _case_from_dict(case), Path(out_dir), **outputs)
        except MedsegError as err:
            record.update(status="failed", message=str(err))
        except Exception as err:  # a worker reports every failure instead of dying with it
            logger.exception("case %s failed unexpectedly", case["case_id"])
            record.update(status="failed", message=f"{type(err).__name__}: {err}")
        else:
            self.cases += 1
            record.update(
                status="done",
                labels=written.labels_path.name,
                extra={kind: path.name for kind, path in written.extra.items()},
                volumes=written.volumes,
                note=written.note,
            )
        record["seconds"] = round(time.perf_counter() - start, 3)
        record["peak_rss_mib"] = _peak_rss_mib()
        return record


def predict_with_ray(
    model_dir: PathLikeStr,
    inputs: PathLikeStr | Sequence[PathLikeStr],
    out_dir: PathLikeStr,
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    runtime: str = "torch",
    device: str | None = None,
    folds: Sequence[int] | None = None,
    tta: bool = True,
    step: float = 0.5,
    probabilities: bool = False,
    uncertainty: bool = False,
    volumes_json: bool = True,
    dicom_seg: bool = False,
    on_progress: ProgressFn | None = None,
) -> BatchReport:
    """Predict every case in ``inputs`` with a pool of Ray actors; resume from the manifest.

    Parameters
    ----------
    model_dir : path
        Trained model folder.
    inputs : path or sequence of path
        As for ``medseg predict`` (:func:`medseg.infer.find_inputs`).
    out_dir : path
        Output folder: the same files as ``medseg predict`` plus ``manifest.json``.
    address : str, optional
        Ray cluster address (``"auto"``, ``"ray://head:10001"``...); ``None`` starts Ray on this
        machine (or uses the Ray session this process already has).
    workers : int, optional
        Actors; by default as many as the cluster's CPUs (or GPUs) allow at the sizes below.
    cpus_per_worker, gpus_per_worker : float
        Ray resources of each actor; its torch threads are ``max(1, int(cpus_per_worker))``.
    runtime : str
        ``"torch"`` or ``"onnx"`` (onnxruntime; the driver exports each fold once).
    device : str, optional
        Torch device in the workers; ``"cuda"`` when ``gpus_per_worker > 0``, else ``"cpu"``.
    folds, tta, step
        As for :class:`~medseg.infer.Predictor`.
    probabilities, uncertainty, volumes_json, dicom_seg : bool
        Optional outputs, as for ``medseg predict``.
    on_progress : callable(done, total), optional
        Cases finished over cases to do in this run.

    Returns
    -------
    BatchReport

    Raises
    ------
    ConfigError
        Ray is not installed, bad sizes, or an unknown runtime.
    ModelFormatError
        The model folder is invalid (checked before Ray starts).
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r} (use {' or '.join(RUNTIMES)})")
    if cpus_per_worker <= 0 or gpus_per_worker < 0 or (workers is not None and workers < 1):
        raise ConfigError("cpus_per_worker must be > 0, gpus_per_worker >= 0 and workers >= 1")
    ray = require("ray", "ray")
    model = ModelFolder.load(model_dir)
    cases = require_inputs(inputs)
    out = Path(out_dir).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ImageWriteError(f"{out}: cannot create output folder ({err.strerror})") from err
    settings = {
        "model": str(model.path.resolve()),
        "plan_sha256": model.info.get("plan_sha256"),
        "folds": sorted(model.folds if folds is None else folds),
        "tta": tta,
        "step": step,
        "runtime": runtime,
        "outputs": {"probabilities": probabilities, "uncertainty": uncertainty},
    }
    manifest = Manifest.open(out, settings)
    todo = [case for case in cases if not manifest.is_done(case.case_id)]
    skipped = [case.case_id for case in cases if manifest.is_done(case.case_id)]
    logger.info("%d case(s) to predict, %d already done", len(todo), len(skipped))
    if not todo:
        return _report(cases, manifest, out, skipped, {}, [])

    started = not ray.is_initialized()
    if started:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    try:
        count = workers or _default_workers(ray, cpus_per_worker, gpus_per_worker)
        device = device or ("cuda" if gpus_per_worker > 0 else "cpu")
        kwargs = {"device": device, "folds": folds, "tta": tta, "step": step}
        onnx_models = None
        if runtime == "onnx":
            from medseg.scale.onnx_export import onnx_bytes

            onnx_models = {f: onnx_bytes(model, f) for f in settings["folds"]}
        actor_class = ray.remote(CaseWorker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=1
        )
        threads = max(1, int(cpus_per_worker))
        actors = [
            actor_class.remote(str(model.path.resolve()), runtime, kwargs, threads, onnx_models)
            for _ in range(min(count, len(todo)))
        ]
        outputs = {"probabilities": probabilities, "uncertainty": uncertainty}
        outputs.update(volumes_json=volumes_json, dicom_seg=dicom_seg)
        peaks = _run_pool(ray, actors, todo, out, outputs, manifest, on_progress)
    finally:
        manifest.save()
        if started:
            ray.shutdown()
    return _report(cases, manifest, out, skipped, peaks, todo)


def _run_pool(
    ray: Any,
    actors: list[Any],
    todo: list[InputCase],
    out: Path,
    outputs: dict[str, bool],
    manifest: Manifest,
    on_progress: ProgressFn | None,
) -> dict[str, tuple[int, float]]:
    """Keep every actor busy until each case has a record; returns worker -> (cases, peak)."""
    queue = deque(todo)
    idle = list(actors)
    pending: dict[Any, tuple[Any, InputCase]] = {}
    peaks: dict[str, tuple[int, float]] = {}
    done = 0
    while queue or pending:
        while idle and queue:
            actor, case = idle.pop(), queue.popleft()
            ref = actor.predict.remote(_case_to_dict(case), str(out), outputs)
            pending[ref] = (actor, case)
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        actor, case = pending.pop(ref)
        idle.append(actor)
        try:
            record = ray.get(ref)
        except ray.exceptions.RayError as err:  # the worker process died (killed, out of memory)
            record = {"status": "failed", "message": f"worker died: {type(err).__name__}"}
            logger.warning("case %s: %s", case.case_id, err)
        worker = record.get("worker", "")
        if worker:
            cases_done, peak = peaks.get(worker, (0, 0.0))
            ok = record["status"] == "done"
            peaks[worker] = (cases_done + ok, max(peak, record["peak_rss_mib"]))
        entry = {k: v for k, v in record.items() if k not in {"case_id", "peak_rss_mib"}}
        manifest.record(case.case_id, {**entry, "inputs": [str(p) for p in case.paths]})
        if record["status"] == "failed":
            logger.warning("case %s failed: %s", case.case_id, record["message"])
        done += 1
        if on_progress is not None:
            on_progress(done, len(todo))
    return peaks


def _report(
    cases: list[InputCase],
    manifest: Manifest,
    out: Path,
    skipped: list[str],
    peaks: dict[str, tuple[int, float]],
    todo: list[InputCase],
) -> BatchReport:
    worked = {case.case_id for case in todo}
    outputs: list[CaseOutput] = []
    failures: list[CaseFailure] = []
    for case in cases:
        entry = manifest.cases.get(case.case_id, {})
        if case.case_id not in worked:
            continue
        if entry.get("status") == "done":
            extra = {kind: out / name for kind, name in entry.get("extra", {}).items()}
            labels = out / entry["labels"]
            volumes = entry.get("volumes", {})
            outputs.append(CaseOutput(case.case_id, labels, extra, volumes, entry.get("note", "")))
        else:
            message = entry.get("message", "not predicted")
            failures.append(CaseFailure(case.case_id, case.paths, message))
    stats = [WorkerStats(name, n, peak) for name, (n, peak) in sorted(peaks.items())]
    return BatchReport(outputs, failures, skipped, stats, manifest.path)


def _default_workers(ray: Any, cpus: float, gpus: float) -> int:
    resources = ray.cluster_resources()
    fits = int(resources.get("CPU", 1) // cpus)
    if gpus > 0:
        fits = min(fits, int(resources.get("GPU", 0) // gpus))
    if fits < 1:
        raise ConfigError(
            f"the Ray cluster ({resources.get('CPU', 0)} CPUs, {resources.get('GPU', 0)} GPUs) "
            f"cannot hold one worker of {cpus} CPU(s) and {gpus} GPU(s)"
        )
    return fits


def _case_to_dict(case: InputCase) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "paths": [str(p.resolve()) for p in case.paths],
        "suffix": case.suffix,
        "note": case.note,
    }


def _case_from_dict(data: dict[str, Any]) -> InputCase:
    paths = tuple(Path(p) for p in data["paths"])
    return InputCase(data["case_id"], paths, data["suffix"], data["note"])


def _peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
