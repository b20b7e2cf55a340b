"""What the cascade adds: context beyond the full-resolution patch, at equal training time.

Synthetic task that a patch cannot solve alone: every volume (48 x 48 x 144 voxels, 1 mm) holds
two identical noisy balls, one in the left and one in the right half; the left one is label 1,
the right one label 2. The full-resolution patch is 32^3 and the balls sit far enough from the
borders and from each other that no patch around one ball sees a border or the other ball, so
the single-stage ``3d`` network can only guess which ball it sees. ``3d_lowres`` (2 mm, the
whole volume in one patch) sees both; ``3d_cascade_fullres`` gets its labels as channels.

Rows, same data, same seed: ``3d`` trained for ``--seconds``; ``3d_lowres`` alone for half of it
(its own prediction scored); the cascade: ``3d_lowres`` for half, ``3d_cascade_fullres`` for the
other half (fed the low-resolution model's predictions of its training cases, ``folds="all"``).
Dice per label on held-out volumes (numpy, against the generated labels). Printed with the CPU
model and the load; compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchtools import cpu_model, load

SHAPE = (48, 48, 144)
PATCH = [32, 32, 32]
LOWRES_SPACING = [2.0, 2.0, 2.0]


def make_data(root: Path, train: int, test: int, seed: int) -> Path:
    """nnU-Net raw layout: ``imagesTr``/``labelsTr`` and held-out ``imagesTs``/``labelsTs``."""
    from medseg.io import Image, write_image

    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE).astype(np.float32)
    for index in range(train + test):
        part = "Tr" if index < train else "Ts"
        label = np.zeros(SHAPE, np.uint8)
        for value, (low, high) in ((1, (40, 56)), (2, (88, 104))):
            centre = (rng.uniform(20, 28), rng.uniform(20, 28), rng.uniform(low, high))
            dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
            label[dist < 10] = value
        image = (label > 0).astype(np.float32) + rng.normal(0, 0.4, SHAPE).astype(np.float32)
        for array, name in (
            (image, f"images{part}/c{index:02d}_0000"),
            (label, f"labels{part}/c{index:02d}"),
        ):
            path = root / f"{name}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_image(Image.from_array(array[None], (1.0, 1.0, 1.0)), path)
    meta = {
        "channel_names": {"0": "MR"},
        "labels": {"background": 0, "left": 1, "right": 2},
        "numTraining": train,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def dice(pred: np.ndarray, truth: np.ndarray, value: int) -> float:
    p, t = pred == value, truth == value
    total = int(p.sum() + t.sum())
    return 2 * int((p & t).sum()) / total if total else float("nan")


def score(model_dir: Path, data: Path) -> dict[str, float]:
    from medseg.infer import Predictor
    from medseg.io import read_image

    predictor = Predictor(model_dir, device="cpu", tta=False)
    rows = []
    for path in sorted((data / "imagesTs").glob("*.nii.gz")):
        truth = read_image(data / "labelsTs" / path.name.replace("_0000", "")).array[0]
        pred = predictor.predict_image(read_image(path)).labels.array[0]
        rows.append([dice(pred, truth, 1), dice(pred, truth, 2)])
    left, right = np.nanmean(np.array(rows), axis=0)
    return {"left": float(left), "right": float(right)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="training time per row")
    parser.add_argument("--train", type=int, default=8)
    parser.add_argument("--test", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("bench_cascade"))
    args = parser.parse_args()

    from medseg.data import load_dataset
    from medseg.plan import PlanBudget, make_plan
    from medseg.train import train_model

    work = args.work.resolve()
    data = work / "Dataset001_LeftRight"
    if not (data / "dataset.json").is_file():
        make_data(data, args.train, args.test, seed=3)
    dataset = load_dataset(data)
    half = args.seconds / 2
    plan = make_plan(
        dataset,
        budget=PlanBudget.for_device("cpu", time_budget_s=args.seconds),
        cascade=True,
        overrides={
            "3d.patch_size": PATCH,
            "3d_lowres.spacing": LOWRES_SPACING,
            "3d.training.time_budget_s": args.seconds,
            "3d_lowres.training.time_budget_s": half,
            "3d_cascade_fullres.training.time_budget_s": half,
        },
    )
    print(f"CPU: {cpu_model()}; load before {load()}")
    for name in ("3d", "3d_lowres", "3d_cascade_fullres"):
        config = plan.configuration(name)
        print(f"  {name}: spacing {config.spacing}, patch {list(config.patch_size)}")
    common = {"folds": "all", "device": "cpu", "seed": 1, "resume": False, "plan": plan}
    rows = []
    for name, budget in (("3d", args.seconds), ("3d_lowres", half), ("3d_cascade_fullres", half)):
        tic = time.perf_counter()
        previous = work / "3d_lowres" if name == "3d_cascade_fullres" else None
        train_model(data, work / name, configuration=name, previous_stage=previous, **common)
        wall = time.perf_counter() - tic
        rows.append((name, budget, wall, score(work / name, data)))
    print(f"load after {load()}")
    print("| row | training s | wall s (training + preprocessing) | Dice left | Dice right |")
    print("|---|---|---|---|---|")
    labels = {"3d": "3d (single stage)", "3d_lowres": "3d_lowres alone"}
    for name, budget, wall, dice_ in rows:
        shown = labels.get(name, "cascade (3d_lowres + 3d_cascade_fullres)")
        spent = args.seconds if name == "3d_cascade_fullres" else budget
        print(f"| {shown} | {spent:g} | {wall:.0f} | {dice_['left']:.3f} | {dice_['right']:.3f} |")


if __name__ == "__main__":
    main()
