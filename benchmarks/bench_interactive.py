"""Latency of interactive segmentation per interaction, medseg vs a direct scikit-image peer.

Usage::

    python benchmarks/bench_interactive.py [MODEL_DIR] [--threads N]

Rows (median of repeats after a warm-up):

* 2D 256x256, learned engine: a box, then 5 correction clicks (goal <= 50 ms each).
* 2D 256x256, classical engine (random walker on the region of interest) vs
  ``skimage.segmentation.random_walker`` on the whole image with the same seeds; the masks
  must agree (Dice printed).
* 3D, a sphere of diameter 81 voxels in a 160^3 volume (region of interest about 121^3),
  learned engine: the first box (every boxed slice in one batch), then correction
  clicks (goal <= 500 ms per interaction).
* 3D, classical engine on the same region (block-averaged to at most 48^3) vs scikit-image's
  random walker on the full-resolution region with the same seeds.

Without MODEL_DIR the learned engine uses untrained weights: latency does not depend on them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from skimage.segmentation import random_walker
from threadpoolctl import threadpool_limits

from medseg.interactive.classical import RandomWalkerEngine
from medseg.interactive.learned import LearnedEngine
from medseg.interactive.network import InteractiveModelConfig, build_network
from medseg.interactive.session import Session
from medseg.interactive.simulate import error_click


def ball(shape: tuple[int, ...], radius: float) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float32)
    centre = [(s - 1) / 2 for s in shape]
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def run_session(engine, image: np.ndarray, ref: np.ndarray, clicks: int) -> list[float]:
    """Seconds per interaction: a tight box, then ``clicks`` CVPR-rule correction clicks."""
    rng = np.random.default_rng(0)
    session = Session(image, engine)
    coords = np.argwhere(ref)
    session.add_box(tuple(coords.min(0)), tuple(coords.max(0)))
    times = []
    start = time.perf_counter()
    mask = session.predict().mask
    times.append(time.perf_counter() - start)
    for _ in range(clicks):
        click = error_click(mask, ref, rng)
        if click is None:
            break
        session.add_click(click.point, positive=click.positive)
        start = time.perf_counter()
        mask = session.predict().mask
        times.append(time.perf_counter() - start)
    return times


def peer_random_walker(image: np.ndarray, ref: np.ndarray) -> tuple[float, np.ndarray]:
    """scikit-image random walker on the whole array, seeds as the classical engine sets them
    for a tight box: background outside the box, object in the central quarter ellipse."""
    coords = np.argwhere(ref)
    lo, hi = coords.min(0), coords.max(0)
    labels = np.full(image.shape, 2, dtype=np.int32)
    labels[tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))] = 0
    grid = np.indices(image.shape, dtype=np.float32)
    centre, semi = (lo + hi) / 2, np.maximum(0.25 * (hi - lo + 1) / 2, 0.5)
    labels[sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, semi, strict=True)) <= 1] = 1
    norm = (image - image.mean()) / image.std()
    start = time.perf_counter()
    prob = random_walker(norm, labels, beta=130, mode="cg_j", tol=1e-3, return_full_prob=True)
    return time.perf_counter() - start, prob[0] >= 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(limits=args.threads)  # BLAS too: the random walker's solver uses it
    if args.model:
        learned = LearnedEngine.load(args.model)
    else:
        config = InteractiveModelConfig()
        learned = LearnedEngine(build_network(config), config)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, torch and BLAS threads {args.threads}, "
        f"model {args.model or 'untrained (same architecture)'}"
    )
    rng = np.random.default_rng(0)

    disk = ball((256, 256), 50)
    image2d = disk + rng.normal(0, 0.2, disk.shape)
    learned_2d = [t for _ in range(args.repeats) for t in run_session(learned, image2d, disk, 5)]
    print(
        f"2D 256^2 learned   | median {1e3 * statistics.median(learned_2d):6.1f} ms / "
        f"interaction | max {1e3 * max(learned_2d):6.1f} ms | goal 50 ms"
    )
    classical_2d = [
        run_session(RandomWalkerEngine(), image2d, disk, 0)[0] for _ in range(args.repeats)
    ]
    peer_t, peer_mask = peer_random_walker(image2d, disk)
    session = Session(image2d, RandomWalkerEngine())
    coords = np.argwhere(disk)
    session.add_box(tuple(coords.min(0)), tuple(coords.max(0)))
    agree = dice(session.predict().mask, peer_mask)
    print(
        f"2D 256^2 classical | medseg {1e3 * statistics.median(classical_2d):6.1f} ms | "
        f"skimage full image {1e3 * peer_t:6.1f} ms | "
        f"{peer_t / statistics.median(classical_2d):.1f}x | Dice agreement {agree:.3f}"
    )

    sphere = ball((160, 160, 160), 40.5)
    image3d = (sphere + rng.normal(0, 0.2, sphere.shape)).astype(np.float32)
    roi_shape = None
    firsts, corrections = [], []
    for _ in range(args.repeats):
        times = run_session(learned, image3d, sphere, 3)
        firsts.append(times[0])
        corrections.extend(times[1:])
    session = Session(image3d, learned)
    session.add_box(tuple(np.argwhere(sphere).min(0)), tuple(np.argwhere(sphere).max(0)))
    roi_shape = tuple(s.stop - s.start for s in session.predict().roi)
    print(
        f"3D {roi_shape} ROI learned | first box {1e3 * statistics.median(firsts):7.1f} ms | "
        f"correction click {1e3 * statistics.median(corrections):7.1f} ms | goal 500 ms"
    )
    classical_3d = [
        run_session(RandomWalkerEngine(), image3d, sphere, 0)[0] for _ in range(args.repeats)
    ]
    roi = session.predict().roi
    peer_t, peer_mask = peer_random_walker(image3d[roi], sphere[roi])
    session = Session(image3d, RandomWalkerEngine())
    session.add_box(tuple(np.argwhere(sphere).min(0)), tuple(np.argwhere(sphere).max(0)))
    agree = dice(session.predict().mask[roi], peer_mask)
    print(
        f"3D {roi_shape} ROI classical | medseg {1e3 * statistics.median(classical_3d):7.1f} "
        f"ms | skimage full-res ROI {1e3 * peer_t:7.1f} ms | "
        f"{peer_t / statistics.median(classical_3d):.1f}x | Dice agreement {agree:.3f}"
    )


if __name__ == "__main__":
    main()
