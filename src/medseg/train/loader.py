"""An endless, reproducible stream of augmented training batches, optionally from worker processes.

Batch ``k`` of a run is drawn with ``numpy.random.default_rng([seed, k])`` and augmented with
MONAI transforms seeded from the same pair, so its content depends only on ``(seed, k)``: not on
the number of workers, nor on whether training was interrupted and resumed at an epoch boundary.
With ``num_workers`` > 0, worker ``w`` of ``W`` produces batches ``w, w + W, ...`` and the
:class:`torch.utils.data.DataLoader` hands them out in order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from monai.transforms import Compose
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from medseg.train.augment import augment_batch, to_tensors
from medseg.train.sampling import PatchSampler


class BatchStream(IterableDataset):
    """Batches ``start, start + 1, ...`` of a seeded run, augmented when ``transform`` is given.

    Yields
    ------
    image : Tensor of float32, shape (B, C, *patch)
    label : Tensor of int16, shape (B, 1, *patch)
    annotated : Tensor of bool, shape (B, num_classes)
        Only when the sampler marks annotated classes (partially labelled or unlabelled cases,
        see :mod:`medseg.train.marginal`); the trainer passes it on to the loss.
    case_index : Tensor of int64, shape (B,)
        Last, only with ``case_index``: each sample's case as ``case_index[case_id]`` (-1 for
        cases it does not list), for the case-level classification head.
    """

    def __init__(
        self,
        sampler: PatchSampler,
        transform: Compose | None,
        *,
        seed: int,
        start: int = 0,
        case_index: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.sampler = sampler
        self.transform = transform
        self.seed = seed
        self.start = start
        self.case_index = None if case_index is None else dict(case_index)

    def batch(self, k: int) -> tuple[torch.Tensor, ...]:
        """Batch number ``k`` of the run: ``(image, label)`` or ``(image, label, annotated)``."""
        rng = np.random.default_rng([self.seed, k])
        batch = self.sampler.sample(rng)
        if self.transform is None:
            tensors = to_tensors(batch)
        else:
            tensors = augment_batch(batch, self.transform, seed=int(rng.integers(2**32)))
        if batch.annotated is not None:
            tensors = (*tensors, torch.from_numpy(batch.annotated))
        if self.case_index is not None:
            index = [self.case_index.get(case_id, -1) for case_id in batch.cases]
            tensors = (*tensors, torch.tensor(index, dtype=torch.int64))
        return tensors

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        info = get_worker_info()
        offset, step = (0, 1) if info is None else (info.id, info.num_workers)
        for k in itertools.count(self.start + offset, step):
            yield self.batch(k)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def batch_iterator(stream: BatchStream, num_workers: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Iterate ``stream`` in the main process (0 workers) or through a DataLoader."""
    if num_workers == 0:
        return iter(stream)
    loader = DataLoader(
        stream,
        batch_size=None,
        num_workers=num_workers,
        worker_init_fn=_worker_init,
        prefetch_factor=2,
    )
    return iter(loader)
