"""Generated tasks in memory, and worker processes that turn them into training batches.

The universal trainer samples crops from a :class:`TaskPool` of tasks from
:mod:`medseg.data.synthetic_tasks`. Generating a 3D task and cropping, resizing and prompting a
batch cost about as much CPU time as a training step of the small network on a CPU, and far
more than one on a GPU. :class:`BatchWorkers` moves that work into worker processes: each
holds its own pool, replaces one of its tasks every ``refresh_every`` batches (task numbers
come from one shared counter, so no task is generated twice) and puts ready batches (crops and
their simulated first prompts) into a queue the trainer takes from. The correction rounds,
which need the network, stay in the trainer.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
from collections.abc import Sequence
from typing import Any

import numpy as np

from medseg.data.synthetic_tasks import SegmentationTask, generate_task
from medseg.interactive.training import Batch, simulate_first_prompts

logger = logging.getLogger(__name__)


def make_task(
    seed: int, task_id: int, kinds: Sequence[str], weights: Sequence[float]
) -> SegmentationTask:
    """Task ``task_id`` of the stream ``seed`` (deterministic)."""
    return generate_task(seed, task_id, kinds=tuple(kinds), weights=tuple(weights))


class TaskPool:
    """Generated tasks in memory, in the interface :func:`train_step` samples from.

    Every task is stored as a volume ``(1, Z, Y, X)`` (a 2D task has ``Z = 1``). Entries are
    (slot, class, axis, slices holding the class); :meth:`pick` draws a task uniformly, then
    one of its entries, so tasks with many labels do not crowd out the others. Anisotropic
    volumes are sliced along their coarse axis only, as the engine processes them.
    """

    ndim = 3

    def __init__(self, tasks: list[tuple[int, SegmentationTask]]) -> None:
        self.ids: list[int] = []
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.entries: list[list[tuple[int, int, int, np.ndarray]]] = []
        for task_id, task in tasks:
            self.ids.append(task_id)
            self.images.append(np.empty(0))
            self.labels.append(np.empty(0))
            self.entries.append([])
            self.replace(len(self.ids) - 1, task_id, task)

    def replace(self, slot: int, task_id: int, task: SegmentationTask) -> None:
        """Put ``task`` (number ``task_id`` of the stream) into ``slot``."""
        image, labels = task.image, task.labels
        if labels.ndim == 2:
            image, labels = image[None], labels[None]
        self.ids[slot] = task_id
        self.images[slot] = image[None].astype(np.float32)
        self.labels[slot] = labels
        spacing = np.asarray(task.spacing if len(task.spacing) == 3 else (1.0, *task.spacing))
        if labels.shape[0] == 1:
            axes: tuple[int, ...] = (0,)
        elif spacing.max() > 1.5 * spacing.min():
            axes = (int(np.argmax(spacing)),)
        else:
            axes = (0, 1, 2)
        entries = []
        for value in np.unique(labels[labels > 0]):
            present = labels == value
            for axis in axes:
                other = tuple(a for a in range(3) if a != axis)
                entries.append((slot, int(value), axis, np.flatnonzero(present.any(axis=other))))
        self.entries[slot] = entries

    def pick(self, rng: np.random.Generator) -> tuple[int, int, int, np.ndarray]:
        """A random entry: a task uniformly among those with labels, then one of its entries."""
        filled = [s for s, e in enumerate(self.entries) if e]
        entries = self.entries[filled[rng.integers(len(filled))]]
        return entries[rng.integers(len(entries))]

    def plane(self, i: int, axis: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        return np.take(self.images[i], k, axis=axis + 1), np.take(self.labels[i], k, axis=axis)


class BatchWorkers:
    """``count`` worker processes making batches from their own pools of generated tasks.

    Parameters
    ----------
    count : int
        Worker processes (at least 1).
    settings : dict
        ``seed``, ``kinds``, ``kind_weights``, ``pool_size`` (shared out among the workers),
        ``refresh_every``, ``batch_size`` and ``size`` (network input side, pixels).
    next_task : int
        First task number the workers may generate; :attr:`next_task` is the first one not
        yet taken.
    stream : int
        Seeds the workers' random generators together with ``settings["seed"]`` (the trainer
        passes its iteration count, so a resumed run draws new crops).

    Batches arrive in whatever order the workers finish them, so a run with workers is not
    repeatable sample by sample (a run without is).
    """

    def __init__(
        self, count: int, settings: dict[str, Any], *, next_task: int, stream: int
    ) -> None:
        context = mp.get_context("spawn")  # fork after torch started its threads can hang
        self._counter = context.Value("q", next_task)
        self._stop = context.Event()
        self._queue: Any = context.Queue(maxsize=2 * count)
        per_worker = max(1, settings["pool_size"] // count)
        self._processes = [
            context.Process(
                target=_work,
                args=(
                    {**settings, "pool_size": per_worker},
                    (int(settings["seed"]), stream, index),
                    self._counter,
                    self._queue,
                    self._stop,
                ),
                daemon=True,
                name=f"medseg-tasks-{index}",
            )
            for index in range(count)
        ]
        for process in self._processes:
            process.start()

    @property
    def next_task(self) -> int:
        return int(self._counter.value)

    def get(self, timeout: float = 600.0) -> Batch:
        """The next ready batch; raises ``RuntimeError`` if every worker died."""
        while True:
            try:
                return self._queue.get(timeout=min(timeout, 10.0))
            except queue.Empty:
                timeout -= 10.0
                if not any(p.is_alive() for p in self._processes) or timeout <= 0:
                    codes = [p.exitcode for p in self._processes]
                    raise RuntimeError(f"task workers gave no batch (exit codes {codes})") from None

    def close(self) -> None:
        """Stop the workers and wait for them (terminating any that do not stop)."""
        self._stop.set()
        for process in self._processes:
            while process.is_alive():
                try:  # a worker blocked on a full queue needs room to see the stop flag
                    self._queue.get(timeout=0.1)
                except queue.Empty:
                    process.join(timeout=1.0)
                    if process.is_alive():
                        process.terminate()
                        process.join(timeout=5.0)
        self._queue.close()


def _take(counter: Any) -> int:
    with counter.get_lock():
        task_id = int(counter.value)
        counter.value = task_id + 1
    return task_id


def _work(
    settings: dict[str, Any], key: tuple[int, int, int], counter: Any, out: Any, stop: Any
) -> None:
    """Worker loop: fill a pool, then make batches until told to stop."""
    rng = np.random.default_rng(np.random.SeedSequence([*key, 2**31 + 1]))

    def new_task() -> tuple[int, SegmentationTask]:
        task_id = _take(counter)
        return task_id, make_task(
            settings["seed"], task_id, settings["kinds"], settings["kind_weights"]
        )

    pool = TaskPool([new_task() for _ in range(settings["pool_size"])])
    made = 0
    while not stop.is_set():
        if made and made % settings["refresh_every"] == 0:
            pool.replace(made // settings["refresh_every"] % len(pool.ids), *new_task())
        batch = simulate_first_prompts(pool, rng, settings["batch_size"], settings["size"])
        made += 1
        while not stop.is_set():
            try:
                out.put(batch, timeout=0.5)
                break
            except queue.Full:
                continue
