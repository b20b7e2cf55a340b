"""Fine-tuning from a self-supervised encoder vs training from scratch, with 2, 5 and 10 labels.

Plain script: ``python benchmarks/bench_pretrain.py [--seconds 600] [--pretrain-seconds 1800]``.

1. Writes the 3D brain example twice: ``--labelled`` (10) labelled cases plus ``--test-cases``
   held-out ones (seed 5), and an unlabelled pool of ``--pool`` other cases (seed 6; only their
   images are used).
2. Plans once on the 10 labelled cases for a CPU budget of ``--seconds``, and keeps that plan
   for every run (same network, patch, schedule), so the pretrained weights fit every run.
3. ``medseg.pretrain.pretrain_encoder`` on the pool's images for ``--pretrain-seconds``.
4. For each count n in ``--counts`` (2 5 10): trains on the first n labelled cases with
   ``train_model(folds="all", plan=plan)`` for ``--seconds``, once from scratch and once with
   ``init=`` the pretrained weights and ``training.encoder_lr_scale = --encoder-lr-scale``;
   predicts the held-out cases and scores them (Dice per class, lesion F1 pooled over cases).

The peer of the pretrained run is the same trainer from random weights on the same plan, cases,
seed and wall-clock budget; the pretraining time is reported apart (it is paid once). Printed:
one row per count and start, the ratio pretrained / scratch of the mean Dice, the CPU model and
the ``uptime`` load before and after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from bench_train_budget import CLASSES, score
from benchtools import cpu_model, load


def subset(dataset: Path, out: Path, count: int) -> Path:
    """A copy of ``dataset`` with its first ``count`` training cases (and every test case)."""
    names = sorted(p.name for p in (dataset / "labelsTr").iterdir())[:count]
    for folder in ("imagesTr", "labelsTr"):
        (out / folder).mkdir(parents=True)
    for name in names:
        case = name.removesuffix(".nii.gz")
        shutil.copy(dataset / "labelsTr" / name, out / "labelsTr" / name)
        shutil.copy(dataset / "imagesTr" / f"{case}_0000.nii.gz", out / "imagesTr")
    info = json.loads((dataset / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**info, "numTraining": count}, indent=2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="training time per run")
    parser.add_argument("--pretrain-seconds", type=float, default=1800.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/medseg-bench-pretrain"))
    parser.add_argument("--labelled", type=int, default=10)
    parser.add_argument("--pool", type=int, default=30, help="unlabelled cases")
    parser.add_argument("--test-cases", type=int, default=8)
    parser.add_argument("--counts", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--spacing", type=float, default=2.0, help="voxel size, mm")
    parser.add_argument("--encoder-lr-scale", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    import torch

    from medseg.data import load_dataset
    from medseg.data.example import make_brain_example
    from medseg.infer import Predictor
    from medseg.infer.files import predict_files
    from medseg.plan import PlanBudget, make_plan
    from medseg.pretrain import pretrain_encoder
    from medseg.train import train_model

    torch.set_num_threads(args.threads)
    if args.work.exists():
        shutil.rmtree(args.work)
    labelled = make_brain_example(
        args.work / "Dataset001_Labelled",
        cases=args.labelled,
        test_cases=args.test_cases,
        seed=5,
        spacing_mm=args.spacing,
    )
    pool = make_brain_example(
        args.work / "Dataset002_Pool", cases=args.pool, seed=6, spacing_mm=args.spacing
    )
    budget = PlanBudget.for_device("cpu", time_budget_s=args.seconds)
    plan = make_plan(load_dataset(labelled), budget=budget)
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} threads; brain example at {args.spacing:g} mm; {args.pool} unlabelled "
        f"cases; {args.test_cases} held-out cases; {args.seconds:.0f} s training per run"
    )
    before = load()
    encoder = pretrain_encoder(
        pool / "imagesTr",
        args.work / "encoder.safetensors",
        plan=plan,
        iterations=10**9,
        time_budget_s=args.pretrain_seconds,
        device="cpu",
    )
    first, last = np.mean(encoder.losses[:10]), np.mean(encoder.losses[-10:])
    print(
        f"pretrained {encoder.iterations} iterations in {encoder.seconds:.0f} s, masked L1 "
        f"{first:.4f} -> {last:.4f}; load {before} -> {load()}",
        flush=True,
    )
    rows = []
    for count in args.counts:
        data = subset(labelled, args.work / f"labelled_{count}", count)
        for start in ("scratch", "pretrained"):
            work = args.work / f"{start}_{count}"
            init = encoder.path if start == "pretrained" else None
            overrides = {"training.encoder_lr_scale": args.encoder_lr_scale} if init else {}
            before, tic = load(), time.perf_counter()
            result = train_model(
                data, work / "model", folds="all", device="cpu", plan=plan, init=init,
                overrides=overrides,
            )  # fmt: skip
            metrics = json.loads((result.folds[0].path / "val_metrics.json").read_text())
            predictor = Predictor(result.model_dir, device="cpu", fast=True)
            predict_files(predictor, labelled / "imagesTs", work / "pred")
            row = {
                "count": count,
                "start": start,
                **score(work / "pred", labelled),
                "iterations": metrics.get("iterations"),
                "train_s": round(time.perf_counter() - tic, 1),
            }
            rows.append(row)
            print(json.dumps(row), f"load {before} -> {load()}", flush=True)
    print("\n| labelled | start | GM Dice | WM Dice | lesion Dice | lesion F1 | iterations |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['count']} | {r['start']} | {r['dice_grey_matter']:.3f} | "
            f"{r['dice_white_matter']:.3f} | {r['dice_lesion']:.3f} | {r['lesion_f1']:.3f} | "
            f"{r['iterations']} |"
        )
    for count in args.counts:
        pair = {r["start"]: r for r in rows if r["count"] == count}
        means = {k: np.mean([v[f"dice_{c}"] for c in CLASSES]) for k, v in pair.items() if v}
        print(f"{count} labelled: mean Dice pretrained / scratch = "
              f"{means['pretrained'] / means['scratch']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
