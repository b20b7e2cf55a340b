"""Data-parallel training with torch DistributedDataParallel (gloo on CPUs, NCCL on GPUs).

Launch one process per device with torchrun; each reads its rank from the environment::

    torchrun --nproc-per-node 4 "$(which medseg)" train DATASET -o MODEL --ddp
    torchrun --nproc-per-node 2 -m medseg.scale.ddp DATASET -o MODEL --device cpu

How the plan is scaled (nnU-Net's rule): the plan's ``batch_size`` is the *global* batch. Each
of the ``W`` ranks draws ``batch_size // W`` patches per iteration (at least 1; the foreground
oversampled patches are the ones at the end of the global batch, as in one process) and the
gradients are averaged, so an iteration is one SGD step on the global batch and the epochs and
iterations per epoch stay the plan's. The learning rate is unchanged. Training with ``W`` ranks
is then the same optimisation as one process with the global batch, about ``W`` times faster per
iteration minus communication; it does not train on more data per epoch. If ``W`` does not
divide the batch, the global batch becomes ``W * (batch_size // W)`` (a warning says so).

Rank ``r`` takes batches ``k * W + r`` of the seeded batch stream, so the ranks never draw the
same batch and a run is reproducible for a given ``W``. Only rank 0 writes logs, checkpoints and
the fold weights (the unwrapped network, so the checkpoint is the single-process format: a run
can resume with another number of ranks, or in one process). Ranks other than 0 wait while
rank 0 fingerprints, plans and preprocesses, then read its ``plan.json``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from medseg._typing import PathLikeStr
from medseg.errors import ConfigError
from medseg.train.loader import BatchStream

logger = logging.getLogger(__name__)


class RankStream(BatchStream):
    """Batches ``k * world + rank`` of ``stream``'s seeded run, drawn by a per-rank sampler."""

    def __init__(self, stream: BatchStream, *, rank: int, world: int) -> None:
        sampler = copy.copy(stream.sampler)
        total, forced = sampler.batch_size, sampler.n_forced
        per_rank = max(1, total // world)
        first = rank * per_rank
        # positions first .. first + per_rank - 1 of the global batch; the last `forced` of the
        # global batch are foreground-oversampled, as in one process
        global_size = per_rank * world
        sampler.batch_size = per_rank
        sampler.n_forced = sum(
            1 for i in range(first, first + per_rank) if i >= global_size - forced
        )
        super().__init__(sampler, stream.transform, seed=stream.seed, start=stream.start)
        self.rank, self.world = rank, world

    def batch(self, k: int) -> tuple[torch.Tensor, ...]:
        return super().batch(k * self.world + self.rank)


@dataclass
class DistributedHooks:
    """:class:`medseg.train.trainer.ParallelHooks` over an initialised process group.

    ``device`` is this rank's device (``cuda:<local rank>`` with NCCL). Ranks other than 0 wait
    in :meth:`release` until rank 0 reaches its first fold (or ends).
    """

    rank: int
    world: int
    device: torch.device
    _released: bool = field(default=False, repr=False)

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def release(self) -> None:
        """The start barrier: rank 0 passes it once it has prepared, the others before starting."""
        if not self._released:
            self._released = True
            dist.barrier()

    def wrap(self, net: nn.Module) -> nn.Module:
        if self.rank == 0:
            self.release()
        ids = [self.device.index] if self.device.type == "cuda" else None
        # deep-supervision heads the loss does not score leave parameters without gradients
        return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=True)

    def split(self, stream: BatchStream) -> BatchStream:
        total = stream.sampler.batch_size
        if total % self.world:
            logger.warning(
                "batch %d does not split over %d ranks: global batch is %d",
                total,
                self.world,
                max(1, total // self.world) * self.world,
            )
        return RankStream(stream, rank=self.rank, world=self.world)

    def mean(self, value: float) -> float:
        tensor = torch.tensor([value], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world

    def finish(self) -> None:
        dist.barrier()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def require_torchrun() -> None:
    """Raise :class:`ConfigError` unless torchrun started this process (its variables are set)."""
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR") if k not in os.environ]
    if missing:
        raise ConfigError(
            f"not started by torchrun ({', '.join(missing)} unset); launch with "
            "torchrun --nproc-per-node N -m medseg train DATASET -o MODEL --ddp"
        )


def init_distributed(device: str = "auto", *, timeout_min: float = 60.0) -> DistributedHooks:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``...).

    ``device`` ``"auto"`` picks CUDA (NCCL, ``cuda:<LOCAL_RANK>``) when available, else the CPU
    (gloo). Raises :class:`ConfigError` outside torchrun.
    """
    require_torchrun()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local)
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            timeout=datetime.timedelta(minutes=timeout_min),
        )
    return DistributedHooks(rank=dist.get_rank(), world=dist.get_world_size(), device=dev)


def train_distributed(
    dataset: Any,
    out_dir: PathLikeStr,
    *,
    device: str = "auto",
    hooks: DistributedHooks | None = None,
    **train_kwargs: Any,
) -> Any:
    """:func:`medseg.train.train_model` on every rank of a torchrun job (see the module doc).

    ``train_kwargs`` are ``train_model``'s. Every rank returns its ``TrainResult`` (rank 0's
    has the full-case validation). The process group is left for the caller to destroy.
    """
    from medseg.train.api import train_model

    hooks = hooks or init_distributed(device)
    kwargs = dict(train_kwargs)
    if hooks.rank != 0:
        hooks.release()  # rank 0 has fingerprinted, planned and preprocessed
        kwargs["plan"] = Path(out_dir) / "plan.json"
    result = train_model(dataset, out_dir, device=hooks.device, parallel=hooks, **kwargs)
    hooks.release()  # rank 0 with every fold already trained never reached wrap()
    return result


def train_model_ddp(dataset: Any, out_dir: PathLikeStr, *, device: str = "auto", **kwargs: Any):
    """:func:`train_distributed` in a process group of its own: joined, trained, destroyed.

    What ``medseg train --ddp`` runs on each rank; takes ``train_model``'s arguments.
    """
    try:
        return train_distributed(dataset, out_dir, device=str(device), **kwargs)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> None:
    """``torchrun ... -m medseg.scale.ddp DATASET -o MODEL [--folds 0] [--epochs N]``."""
    parser = argparse.ArgumentParser(prog="medseg.scale.ddp", description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--folds", default="0", help="e.g. 0,1 or 'all'")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--plan", help="plan.json to train with")
    parser.add_argument("--workers", type=int, default=0, help="augmentation workers per rank")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARN)
    folds = "all" if args.folds == "all" else [int(f) for f in args.folds.split(",")]
    train_model_ddp(
        args.dataset,
        args.output,
        device=args.device,
        folds=folds,
        epochs=args.epochs,
        plan=args.plan,
        num_workers=args.workers,
    )


if __name__ == "__main__":
    main()
