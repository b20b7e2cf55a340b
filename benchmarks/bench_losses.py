"""Losses compared on the same data and iterations: Dice, HD95, Betti error and ECE per variant.

Plain script: ``python benchmarks/bench_losses.py [--iterations 200] [--variants ...]``.

1. Writes the 2D brain example (``make_brain2d_example``: background, grey matter, white matter,
   lesion) with ``--train-cases`` + ``--test-cases`` cases, seed 0, at ``--spacing`` mm.
2. Trains every variant (``VARIANTS``: a ``training.loss`` and ``training.extra_losses``, and
   for the region variants the nested regions brain ⊃ white matter + lesion ⊃ lesion) on one
   model (``folds="all"``) with the same plan, seed and number of iterations
   (``--iterations``; equal work rather than equal seconds, so the comparison survives a loaded
   machine; the seconds per iteration are printed).
3. Predicts the held-out cases with probabilities (no TTA), scores the label maps with
   ``medseg.evaluate.evaluate_folders`` (Dice, HD95, Betti error per label, region variants
   included: their regions are turned back into labels) and, for softmax variants, the
   top-label ECE of the probabilities over foreground voxels (15 bins).

``--costs`` prints instead the CPU time (process time: little changed by other load; run it with
``--threads 1``) of one loss evaluation (forward + backward on random logits of ``--patch``,
batch 2, 4 classes; median of 5 after a warm-up) for every term and variant, with its ratio to
``dice_ce``: what each loss adds to a training iteration, apart from the network.

The peer of each variant is ``dice_ce`` (nnU-Net's loss) trained in the same run: ratios are to
it. Printed: a markdown table, the CPU model and the load before and after. Short runs are far
from converged: read them as equal-budget figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
from pathlib import Path

from benchtools import cpu_model, load

NESTED = {"brain": [1, 2, 3], "white_lesion": [2, 3], "lesion": [3]}
VARIANTS: dict[str, tuple[str, dict[str, float], bool]] = {
    # name: (training.loss, training.extra_losses, region training)
    "dice_ce": ("dice_ce", {}, False),
    "ce": ("ce", {}, False),
    "ce+nacl": ("ce", {"nacl": 0.1}, False),
    "dice_ce+nacl": ("dice_ce", {"nacl": 0.1}, False),
    "focal": ("focal", {}, False),
    "dice+focal": ("dice", {"focal": 1.0}, False),
    "tversky": ("tversky", {}, False),
    "dice_ce+cldice": ("dice_ce", {"cldice": 0.5}, False),
    "dice_ce+boundary": ("dice_ce", {"boundary": 0.01}, False),
    "dice_ce+connectivity": ("dice_ce", {"connectivity": 0.5}, False),
    "regions": ("dice_bce", {}, True),
    "regions+containment": ("dice_bce", {"containment": 1.0}, True),
}


def _with_regions(dataset: Path, out: Path) -> Path:
    """A copy of ``dataset`` whose dataset.json declares the nested regions."""
    shutil.copytree(dataset, out)
    meta = json.loads((out / "dataset.json").read_text())
    meta["labels"] = {"background": 0, **NESTED}
    meta["regions_class_order"] = [1, 2, 3]
    (out / "dataset.json").write_text(json.dumps(meta, indent=2))
    return out


def run_variant(name: str, dataset: Path, reference: Path, work: Path, iterations: int) -> dict:
    """Train ``name`` for ``iterations``, predict and score the held-out cases."""
    from medseg.evaluate import evaluate_folders
    from medseg.infer import Predictor
    from medseg.infer.files import predict_files
    from medseg.train import train_model

    loss, extra, regions = VARIANTS[name]
    per_epoch = min(iterations, 50)
    epochs = max(1, iterations // per_epoch)
    result = train_model(
        dataset,
        work / "model",
        folds="all",
        device="cpu",
        epochs=epochs,
        overrides={
            "training.loss": loss,
            "training.extra_losses": extra,
            "training.iterations_per_epoch": per_epoch,
            "training.val_iterations": 1,
        },
    )
    with open(result.folds[0].path / "log.csv") as f:
        train_s = sum(float(row["epoch_s"]) for row in csv.DictReader(f))
    predictor = Predictor(result.model_dir, device="cpu", fast=True)
    report = predict_files(predictor, reference / "imagesTs", work / "pred", probabilities=True)
    if not report.ok:
        raise RuntimeError(f"prediction failed: {report.failures}")
    scored = evaluate_folders(
        work / "pred",
        reference / "labelsTs",
        dataset_json=reference / "dataset.json",
        probabilities_dir=None if regions else work / "pred",
        report=False,
    )
    classes = scored.summary["classes"]
    ece = (scored.summary.get("calibration") or {}).get("ece", {}).get("mean")
    return {
        "dice": {c: (s.get("dice") or {}).get("mean") for c, s in classes.items()},
        "hd95": {c: (s.get("hd95") or {}).get("mean") for c, s in classes.items()},
        "betti": {c: (s.get("betti_error") or {}).get("mean") for c, s in classes.items()},
        "ece": ece,
        "s_per_it": train_s / (epochs * per_epoch),
    }


def loss_costs(patch: tuple[int, ...], repeats: int = 5) -> None:
    """Print the forward + backward time of every variant's loss on random logits of ``patch``."""
    import statistics

    import torch

    from medseg.train.loss_terms import CombinedLoss, make_term
    from medseg.train.losses import SegmentationLoss

    generator = torch.Generator().manual_seed(0)
    label = torch.randint(0, 4, (2, 1, *patch), generator=generator)
    label[..., : patch[-1] // 2] = 0
    regions = [v for v in NESTED.values()]
    timings = {}
    for name, (loss, extra, region) in VARIANTS.items():
        options = {"regions": regions if region else ()}
        main = (
            SegmentationLoss(**options) if loss.startswith("dice_") else make_term(loss, **options)
        )
        terms = [(loss, 1.0, main)] + [(n, w, make_term(n, **options)) for n, w in extra.items()]
        module = CombinedLoss(terms, **options)
        channels = len(regions) if region else 4
        logits = torch.randn(2, channels, *patch, generator=generator, requires_grad=True)
        times = []
        for i in range(repeats + 1):
            start = time.process_time()
            module(logits, label).backward()
            if i:
                times.append(time.process_time() - start)
        timings[name] = statistics.median(times)
    peer = timings["dice_ce"]
    shape = " x ".join(map(str, patch))
    print(f"loss forward + backward, logits (2, C, {shape}), CPU time, load {load()}")
    print("| variant | CPU ms | ratio to dice_ce |\n|---|---|---|")
    for name, seconds in timings.items():
        print(f"| {name} | {1000 * seconds:.1f} | {seconds / peer:.2f} |")


def _mean(values: dict) -> float | None:
    finite = [v for v in values.values() if v is not None]
    return sum(finite) / len(finite) if finite else None


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200, help="training iterations each")
    parser.add_argument("--work", type=Path, default=Path("/tmp/medseg-bench-losses"))
    parser.add_argument("--train-cases", type=int, default=16)
    parser.add_argument("--test-cases", type=int, default=6)
    parser.add_argument("--spacing", type=float, default=2.0, help="voxel size, mm")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--costs", action="store_true", help="time each loss alone and stop")
    parser.add_argument("--patch", type=int, nargs="+", default=[48, 56, 48])
    args = parser.parse_args()

    import torch

    if args.costs:
        torch.set_num_threads(args.threads)
        print(f"CPU: {cpu_model()}, torch {torch.__version__}, {args.threads} threads")
        loss_costs(tuple(args.patch))
        return

    from medseg.data.example import make_brain2d_example

    torch.set_num_threads(args.threads)
    if args.work.exists():
        shutil.rmtree(args.work)
    data = make_brain2d_example(
        args.work / "Dataset001_BrainExample",
        cases=args.train_cases,
        test_cases=args.test_cases,
        seed=0,
        spacing_mm=args.spacing,
    )
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} threads; {args.train_cases} + {args.test_cases} brain2d cases at "
        f"{args.spacing:g} mm; {args.iterations} iterations per variant; load {load()}",
        flush=True,
    )
    names = ["dice_ce", *[v for v in args.variants if v != "dice_ce"]]
    region_data = None
    results = {}
    for name in names:
        dataset = data
        if VARIANTS[name][2]:
            region_data = region_data or _with_regions(data, args.work / "Dataset002_Regions")
            dataset = region_data
        results[name] = run_variant(name, dataset, data, args.work / name, args.iterations)
        print(name, json.dumps(results[name]), "load", load(), flush=True)
    peer = results["dice_ce"]
    print(
        "\n| variant | mean Dice (ratio to dice_ce) | lesion Dice | mean HD95 mm | "
        "mean Betti error | ECE | s/iteration (epoch time) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, res in results.items():
        dice, ref = _mean(res["dice"]), _mean(peer["dice"])
        ratio = f" ({dice / ref:.2f})" if dice is not None and ref else ""
        lesion = res["dice"].get("lesion")
        print(
            f"| {name} | {_fmt(dice)}{ratio} | {_fmt(lesion)} | {_fmt(_mean(res['hd95']), '.1f')} "
            f"| {_fmt(_mean(res['betti']), '.2f')} | {_fmt(res['ece'])} "
            f"| {res['s_per_it']:.2f} |"
        )
    print("load after:", load())


if __name__ == "__main__":
    main()
