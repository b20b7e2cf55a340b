"""One rank of the DDP test, started by torchrun: trains, records weight digests and writers.

``python -m torch.distributed.run --nproc-per-node 2 ddp_worker.py DATASET MODEL PLAN LOGDIR
[--stop-after-epoch N]`` writes ``LOGDIR/rank{r}.json``: a digest of the weights after every
iteration, the iterations seen, and how many checkpoints this rank saved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch
import torch.distributed as dist

import medseg.train.trainer as trainer
from medseg.scale.ddp import DistributedHooks, init_distributed, train_distributed


class StopTraining(Exception):
    """Raised from on_epoch to simulate an interrupted run."""


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("dataset", "model", "plan", "logdir"):
        parser.add_argument(name)
    parser.add_argument("--stop-after-epoch", type=int)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = init_distributed("cpu")
    hooks = _Recording(rank=base.rank, world=base.world, device=base.device)
    digests: list[str] = []
    iterations: list[int] = []
    saved: list[int] = []
    real_save = trainer.save_checkpoint

    def counting_save(path, net, optimizer, state):  # type: ignore[no-untyped-def]
        saved.append(state["epoch"])
        real_save(path, net, optimizer, state)

    trainer.save_checkpoint = counting_save

    def on_progress(done: int, _total: int) -> None:
        params = [p.detach().cpu().numpy().tobytes() for p in hooks.net.parameters()]
        digests.append(hashlib.sha256(b"".join(params)).hexdigest())
        iterations.append(done)

    def on_epoch(row: dict) -> None:
        if args.stop_after_epoch is not None and row["epoch"] >= args.stop_after_epoch:
            raise StopTraining

    try:
        train_distributed(
            args.dataset,
            args.model,
            hooks=hooks,
            plan=args.plan,
            folds=[0],
            num_workers=0,
            on_progress=on_progress,
            on_epoch=on_epoch,
        )
    except StopTraining:
        dist.barrier()
    record = {"digests": digests, "iterations": iterations, "saved": saved, "world": hooks.world}
    Path(args.logdir, f"rank{hooks.rank}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


class _Recording(DistributedHooks):
    """Keeps the unwrapped network so that the progress callback can hash its weights."""

    def wrap(self, net):  # type: ignore[no-untyped-def]
        self.net = net
        return super().wrap(net)


if __name__ == "__main__":
    main()
