"""Batch k depends only on (seed, k): same batches with 0 or 2 workers, and after a restart."""

from __future__ import annotations

import itertools

import torch

from medseg.train.augment import build_augmentation
from medseg.train.loader import BatchStream, batch_iterator
from medseg.train.sampling import PatchSampler


def _stream(source, start: int = 0) -> BatchStream:
    sampler = PatchSampler(
        source, list(source.case_ids), (8, 8, 8), 2, 0.5, foreground_labels=(1, 2)
    )
    return BatchStream(sampler, build_augmentation(3, mirror_axes=(0, 1, 2)), seed=5, start=start)


def test_workers_and_restart_give_the_same_batches(source) -> None:
    main = list(itertools.islice(batch_iterator(_stream(source), 0), 4))
    workers = list(itertools.islice(batch_iterator(_stream(source), 2), 4))
    restarted = list(itertools.islice(batch_iterator(_stream(source, start=2), 0), 2))
    for (a_img, a_lab), (b_img, b_lab) in zip(main, workers, strict=True):
        assert torch.equal(a_img, b_img)
        assert torch.equal(a_lab, b_lab)
    for (a_img, _), (b_img, _) in zip(main[2:], restarted, strict=True):
        assert torch.equal(a_img, b_img)
    assert not torch.equal(main[0][0], main[1][0])
