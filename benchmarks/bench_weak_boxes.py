"""Box labels where boxes fit: separate compact objects (synthetic 2D ellipses), each variant.

Plain script: ``python benchmarks/bench_weak_boxes.py [--iterations 300 | --seconds S]``.

The brain example nests its boxes (white matter inside grey matter, lesions inside white matter)
and is the worst case for box labels; this benchmark measures them on what they are for. It
writes ``--train-cases`` + ``--test-cases`` 128 x 128 images (seed 0), each with 1 to 3 bright
ellipses (radii 8-24 px, any orientation; contrast 80 over a smooth background with noise of
standard deviation 25), and trains, on the same CPU plan and the same work each, the variants
of ``bench_weak.py``: ``full`` (the masks), ``boxes`` (random-walker pseudo-masks),
``boxes-prior`` (painted boxes, ``training.loss: box_prior``) and ``boxes-naive`` (painted boxes
read as masks). Printed: held-out Dice of the object class, its ratio to ``full`` (the issue's
goal for boxes is 95 %), the CPU model and the load.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from bench_weak import TRAIN_OPTIONS, VARIANTS, train_and_score
from benchtools import cpu_model, load

SIZE = 128


def make_ellipses(out: Path, train_cases: int, test_cases: int, seed: int = 0) -> Path:
    """Write the ellipse dataset (nnU-Net layout, 2D NIfTI, 1 mm) and return its folder."""
    from medseg.io import Image, write_image

    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (out / sub).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(train_cases + test_cases):
        label = np.zeros((SIZE, SIZE), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.integers(24, SIZE - 24, 2)
            ry, rx = rng.integers(8, 25, 2)
            angle = rng.uniform(0, np.pi)
            u = (yy - cy) * np.cos(angle) + (xx - cx) * np.sin(angle)
            v = -(yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle)
            label[(u / ry) ** 2 + (v / rx) ** 2 <= 1] = 1
        wave = np.sin(xx / rng.uniform(10, 30)) * np.cos(yy / rng.uniform(10, 30))
        image = 100 + 30 * wave + 80 * label + rng.normal(0, 25, label.shape)
        split = "Tr" if i < train_cases else "Ts"
        case = f"Ellipses_{i:03d}"
        for array, path in (
            (image.astype(np.float32), out / f"images{split}" / f"{case}_0000.nii.gz"),
            (label, out / f"labels{split}" / f"{case}.nii.gz"),
        ):
            write_image(Image(array[None], (1.0, 1.0), (0.0, 0.0), np.eye(2)), path)
    meta = {
        "channel_names": {"0": "MR"},
        "labels": {"background": 0, "object": 1},
        "numTraining": train_cases,
        "file_ending": ".nii.gz",
        "name": "Ellipses",
    }
    (out / "dataset.json").write_text(json.dumps(meta, indent=2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="iterations per variant")
    parser.add_argument("--seconds", type=float, default=None, help="time instead of iterations")
    parser.add_argument("--work", type=Path, default=Path("/tmp/medseg-bench-weak-boxes"))
    parser.add_argument("--train-cases", type=int, default=20)
    parser.add_argument("--test-cases", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.work.exists():
        shutil.rmtree(args.work)
    full = make_ellipses(args.work / "Dataset050_Ellipses", args.train_cases, args.test_cases)
    work = f"{args.seconds:g} s" if args.seconds else f"{args.iterations} iterations"
    print(f"CPU: {cpu_model()}, {args.threads} threads, {work} per variant; load {load()}")
    results = {}
    for name in ("full", "boxes", "boxes-prior", "boxes-naive"):
        data = full if name == "full" else VARIANTS[name](full, args.work / f"data_{name}", 0)
        scores = train_and_score(
            data,
            args.work / name,
            args.seconds or 0.0,
            full,
            iterations=None if args.seconds else args.iterations,
            **dict(TRAIN_OPTIONS.get(name, {})),
        )
        results[name] = scores["dice"]["object"]
        ratio = results[name] / results["full"]
        print(f"{name:12s} Dice {results[name]:.3f} ({ratio:.0%} of full); load {load()}")


if __name__ == "__main__":
    main()
