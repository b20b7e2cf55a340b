"""Does the augmenting data loader keep up with training on this CPU?

Measures, on 64^3 patches at batch 2 (the CPU reference network of docs/plan.md), with a
synthetic cache of memory-mapped cases of 96 x 112 x 96 voxels:

1. loader throughput in one thread (sampling + MONAI augmentation, nnU-Net probabilities), with
   and without elastic deformation (p 0.2), and per transform at p = 1;
2. the training step of the small DynUNet 8-16-32-64-128 (float32; bf16 autocast too where the
   CPU has bf16 instructions);
3. the real training loop pulling batches from the DataLoader with 1 worker: the share of time
   spent waiting for data.

Plain script: ``python benchmarks/bench_dataloader.py [--steps 6]``. Keep runs short on a shared
CPU; timings are medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchtools import median_seconds
from medseg.plan.plan import NetworkConfig
from medseg.train.augment import augment_batch, build_augmentation
from medseg.train.loader import BatchStream, batch_iterator
from medseg.train.losses import DeepSupervisionLoss, SegmentationLoss
from medseg.train.networks import build_network, output_list
from medseg.train.sampling import PatchSampler

PATCH = (64, 64, 64)
BATCH = 2
SHAPE = (96, 112, 96)


class NpyCache:
    """The cache layout's two arrays per case, memory-mapped, plus foreground locations."""

    def __init__(self, folder: Path, n_cases: int) -> None:
        self.folder = folder
        rng = np.random.default_rng(0)
        self.locations = {}
        for i in range(n_cases):
            label = np.zeros((1, *SHAPE), np.uint8)
            label[0, 20:70, 20:90, 20:70] = 1
            label[0, 40:50, 40:60, 40:50] = 2
            label[0, 60:63, 30:33, 60:63] = 3
            image = rng.normal(size=(1, *SHAPE)).astype(np.float32) + label
            np.save(folder / f"c{i}_image.npy", image)
            np.save(folder / f"c{i}_label.npy", label)
            self.locations[f"c{i}"] = {v: np.argwhere(label[0] == v)[::50] for v in (1, 2, 3)}

    def load(self, case_id: str, mmap: bool = True):
        image = np.load(self.folder / f"{case_id}_image.npy", mmap_mode="r")
        label = np.load(self.folder / f"{case_id}_label.npy", mmap_mode="r")
        return image, label, {}

    def foreground_locations(self, case_id: str):
        return self.locations[case_id]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="Training steps per measurement.")
    args = parser.parse_args()
    torch.manual_seed(0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"machine: {platform.processor() or platform.machine()}, {cores} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cache = NpyCache(Path(tmp), 4)
        sampler = PatchSampler(
            cache, ["c0", "c1", "c2", "c3"], PATCH, BATCH, 0.33, foreground_labels=(1, 2, 3)
        )
        rng = np.random.default_rng(0)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        sample_s = median_seconds(lambda: sampler.sample(rng), 10)
        results = {}
        for elastic in (0.0, 0.2):
            transform = build_augmentation(3, mirror_axes=(0, 1, 2), elastic_prob=elastic)
            seeds = iter(range(10**6))
            results[elastic] = median_seconds(
                lambda t=transform, s=seeds: augment_batch(sampler.sample(rng), t, next(s)), 30
            )
        batch = sampler.sample(rng)
        single = {
            "image": torch.from_numpy(batch.image[0]),
            "label": torch.from_numpy(batch.label[0]),
        }
        per_transform = []
        for transform in build_augmentation(3, mirror_axes=(0,), elastic_prob=1.0).transforms:
            transform.prob = 1.0
            per_transform.append(
                (type(transform).__name__, median_seconds(lambda t=transform: t(dict(single)), 3))
            )
        torch.set_num_threads(threads)

        cfg = NetworkConfig(
            filters=(8, 16, 32, 64, 128),
            kernel_sizes=((3, 3, 3),) * 5,
            strides=((1, 1, 1),) + ((2, 2, 2),) * 4,
        )
        net = build_network(cfg, 1, 4, 3)
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
        loss_fn = DeepSupervisionLoss(SegmentationLoss())
        image = torch.from_numpy(batch.image)
        label = torch.from_numpy(batch.label)

        def step(x=image, y=label) -> None:
            optimizer.zero_grad()
            loss = loss_fn(output_list(net(x), 3), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            optimizer.step()

        step_s = median_seconds(step, args.steps)

        stream = BatchStream(sampler, build_augmentation(3, mirror_axes=(0, 1, 2)), seed=0)
        batches = batch_iterator(stream, num_workers=1)
        next(batches)
        wait = work = 0.0
        for _ in range(args.steps):
            tic = time.perf_counter()
            x, y = next(batches)
            toc = time.perf_counter()
            step(x, y)
            wait += toc - tic
            work += time.perf_counter() - toc
        del batches

    print(f"sampling only (1 thread): {sample_s * 1e3:.1f} ms/batch")
    for elastic, seconds in results.items():
        print(
            f"sampling + augmentation, elastic p {elastic}: {seconds * 1e3:.0f} ms/batch = "
            f"{BATCH / seconds:.1f} patches/s (1 thread)"
        )
    print("per transform at p = 1 (one 64^3 sample):")
    for name, seconds in per_transform:
        print(f"  {name:32s} {seconds * 1e3:7.1f} ms")
    print(
        f"training step DynUNet 8-128, 64^3, batch 2, float32: {step_s:.2f} s = "
        f"{BATCH / step_s:.1f} patches/s"
    )
    ratio = results[0.0] / step_s
    print(
        f"loader needs {ratio:.0%} of one step per batch in one thread: "
        f"{'keeps up' if ratio < 1 else 'does NOT keep up'} with one worker"
    )
    print(
        f"training loop with 1 worker: waited {wait:.2f} s for data in {wait + work:.1f} s "
        f"({wait / (wait + work):.0%})"
    )


if __name__ == "__main__":
    main()
