"""Lesion synthesis as augmentation vs none, on equal CPU budgets, with few training lesions.

Plain script: ``python benchmarks/bench_lesion_synthesis.py [--seconds 600] [--work DIR]``.

1. Writes ``make_brain_example(cases=--train-cases, test_cases=--test-cases, seed=3,
   lesion_counts=--lesions)`` at ``--spacing`` mm: few training cases with 1-2 white-matter
   lesions each (15 % of cases get 0 or 1), so the network sees few real lesions.
2. For each training seed, trains the same CPU plan twice with ``train_model(folds="all",
   device="cpu")`` and ``--seconds`` of training each: ``none`` (the plan as made) and
   ``synthesis`` (``training.lesion_synthesis.probability = --probability``, up to
   ``--max-lesions`` synthetic lesions per patch, host tissue and intensities learned from the
   training cases). Same plan, data, seed and wall-clock budget; only the flag differs.
3. Predicts the held-out cases (no TTA) and scores them with ``medseg.evaluate``: lesion F1
   pooled over cases (components matched one-to-one), lesion Dice, Dice of grey and white
   matter.

``--overhead-only`` measures instead what synthesis costs the data pipeline: MONAI augmentation
of 64^3 brain patches (2 mm, z-scored), with and without lesion synthesis at probability 1 (the
worst case), in one process; printed as ms per patch and their ratio.

The medseg path is compared with itself (the peer is the same trainer without synthesis): what
is measured is the effect of the option on equal compute. Printed: one row per variant and
seed, the mean over seeds, the CPU model and the ``uptime`` load before and after each run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from bench_train_budget import score
from benchtools import cpu_model, load


def train_and_score(
    dataset: Path, work: Path, seconds: float, seed: int, overrides: dict
) -> dict[str, object]:
    """Train ``dataset`` for ``seconds`` with ``overrides``, predict and score ``imagesTs``."""
    from medseg.infer import Predictor
    from medseg.infer.files import predict_files
    from medseg.plan import PlanBudget
    from medseg.train import train_model

    start = time.perf_counter()
    result = train_model(
        dataset,
        work / "model",
        folds="all",
        device="cpu",
        seed=seed,
        budget=PlanBudget.for_device("cpu", time_budget_s=seconds),
        overrides=overrides,
    )
    train_s = time.perf_counter() - start
    metrics = json.loads((result.folds[0].path / "val_metrics.json").read_text())
    predictor = Predictor(result.model_dir, device="cpu", fast=True)
    report = predict_files(predictor, dataset / "imagesTs", work / "pred")
    if not report.ok:
        raise RuntimeError(f"prediction failed: {report.failures}")
    return {
        **score(work / "pred", dataset),
        "iterations": metrics.get("iterations"),
        "train_s": round(train_s, 1),
    }


def overhead(repeats: int = 20) -> None:
    """ms per augmented 64^3 patch, with and without synthesis (p 1), on brain-example arrays."""
    from benchtools import median_seconds
    from medseg.data.example import load_brain_template, synthesize_brain_case
    from medseg.train.augment import augment_batch, build_augmentation
    from medseg.train.lesion_synthesis import RandLesionSynthesisd, collect_lesion_statistics
    from medseg.train.sampling import PatchSampler

    template = load_brain_template(2.0)
    cases = {}
    for i in range(4):
        rng = np.random.default_rng(i)
        case = synthesize_brain_case(template.t1, template.tissue, template.spacing, rng)
        image = case.image.astype(np.float32)
        inside = image > 0
        image = np.where(inside, (image - image[inside].mean()) / image[inside].std(), 0)
        cases[f"c{i}"] = (image[None].astype(np.float32), case.labels[None].astype(np.int16))

    class Source:
        def load(self, case_id: str, mmap: bool = True):
            return (*cases[case_id], None)

        def foreground_locations(self, case_id: str) -> dict[int, np.ndarray]:
            label = cases[case_id][1][0]
            return {int(v): np.argwhere(label == v) for v in (1, 2, 3)}

    ids = sorted(cases)
    stats = collect_lesion_statistics(Source(), ids, lesion_label=3, spacing=(2.0, 2.0, 2.0))
    sampler = PatchSampler(Source(), ids, (64, 64, 64), 2, 0.5, foreground_labels=(1, 2, 3))
    batches = [sampler.sample(np.random.default_rng(k)) for k in range(repeats)]
    synthesis = RandLesionSynthesisd(stats, (2.0, 2.0, 2.0), prob=1.0, max_lesions=3)
    times = {}
    for name, extra in (("without", None), ("with", synthesis)):
        transform = build_augmentation(3, mirror_axes=(0, 1, 2), lesion_synthesis=extra)
        counter = iter(range(10**6))

        def run(t=transform, c=counter) -> None:
            k = next(c)
            augment_batch(batches[k % repeats], t, seed=k)

        times[name] = median_seconds(run, repeats) / 2 * 1000
    print(
        f"CPU: {cpu_model()}; load {load()}; augmentation of one 64^3 patch: "
        f"{times['without']:.1f} ms without synthesis, {times['with']:.1f} ms with (p 1, "
        f"up to 3 lesions): x{times['with'] / times['without']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="training time per run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/medseg-bench-lesion-synthesis"))
    parser.add_argument("--train-cases", type=int, default=6)
    parser.add_argument("--test-cases", type=int, default=8)
    parser.add_argument("--lesions", type=int, nargs=2, default=(1, 2), help="per case, inclusive")
    parser.add_argument("--spacing", type=float, default=2.0, help="voxel size, mm")
    parser.add_argument("--probability", type=float, default=0.5, help="per patch")
    parser.add_argument("--max-lesions", type=int, default=3, help="per patch")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--overhead-only", action="store_true", help="time the pipeline only")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.overhead_only:
        overhead()
        return

    from medseg.data.example import make_brain_example

    if args.work.exists():
        shutil.rmtree(args.work)
    dataset = make_brain_example(
        args.work / "Dataset001_BrainFewLesions",
        cases=args.train_cases,
        test_cases=args.test_cases,
        seed=3,
        spacing_mm=args.spacing,
        lesion_counts=tuple(args.lesions),
    )
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} threads; {args.train_cases} training + {args.test_cases} held-out "
        f"brain cases at {args.spacing:g} mm, {args.lesions[0]}-{args.lesions[1]} lesions per "
        f"case; {args.seconds:.0f} s training per run"
    )
    variants = {
        "none": {},
        "synthesis": {
            "training.lesion_synthesis.probability": args.probability,
            "training.lesion_synthesis.max_lesions": args.max_lesions,
        },
    }
    results: dict[str, list[dict]] = {name: [] for name in variants}
    for seed in args.seeds:
        for name, overrides in variants.items():
            before = load()
            scores = train_and_score(
                dataset, args.work / f"{name}_s{seed}", args.seconds, seed, overrides
            )
            results[name].append(scores)
            print(f"{name} seed {seed}: {json.dumps(scores)} load {before} -> {load()}", flush=True)
    print(
        "\n| variant | seed | lesion F1 | TP/FP/FN | lesion Dice | GM Dice | WM Dice | iterations |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        for seed, r in zip(args.seeds, runs, strict=True):
            hits = r["lesions"]
            print(
                f"| {name} | {seed} | {r['lesion_f1']:.3f} | {hits['tp']}/{hits['fp']}/"
                f"{hits['fn']} | {r['dice_lesion']:.3f} | {r['dice_grey_matter']:.3f} | "
                f"{r['dice_white_matter']:.3f} | {r['iterations']} |"
            )
    for name, runs in results.items():
        f1 = np.nanmean([r["lesion_f1"] for r in runs])
        dice = np.nanmean([r["dice_lesion"] for r in runs])
        print(f"mean {name}: lesion F1 {f1:.3f}, lesion Dice {dice:.3f} over {len(runs)} seeds")


if __name__ == "__main__":
    main()
