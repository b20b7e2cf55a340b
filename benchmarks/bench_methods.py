"""The methods of docs/methods.md trained under one time budget on the same brains.

Plain script::

    python benchmarks/bench_methods.py [--budget 120] [--variants dynunet,unet] [--work DIR]
                                       [--device cpu|cuda] [--cores 0,1] [--seed 1] [--costs]

Data: ``bench_train_budget.brain_data`` (24 training + 8 held-out synthetic brains, seed 7,
1-10 lesions per case, nnU-Net raw layout), planned once for a CPU time budget of
``--budget`` seconds. Each entry of :data:`VARIANTS` is a name and the plan overrides that
select it (``medseg train --set KEY=VALUE``): the networks, then the losses of
``bench_losses.VARIANTS`` that apply to label maps; options added later are one more row. A
variant of :data:`STAGES` (the cascade) trains its configurations one after the other, each for
an equal share of ``--budget`` (``folds="all"``: the full-resolution stage learns from the
low-resolution model's own predictions of its training cases). UNETR and
SwinUNETR need patch edges that are multiples of 16 and 32: their planned patch is rounded up
(:data:`PATCH_MULTIPLE`), which they pay for in time within the same budget.

For every variant, in a fresh process one after the other (so that peak memory is its own):
``bench_train_budget.run_medseg`` trains ``folds="all"`` for ``--budget`` seconds of wall time
(validation included) with medseg's defaults and the variant's overrides, predicts the held-out
cases without TTA (with probabilities), and ``medseg.evaluate.evaluate_folders`` scores them:
Dice per class and HD95 (mm, mean over classes), lesion F1 (one-to-one matched components,
TP/FP/FN summed over cases), ECE (top-label, foreground voxels, mean over cases), Betti error
(mean over cases and classes), parameters, seconds per training iteration (validation time
left out), iterations, peak memory (peak RSS of the variant's process, which trains,
predicts and scores; on CUDA the peak allocated GPU memory).

``--costs`` prints instead the table of docs/methods.md: parameters, multiply-accumulates of
one forward pass of one patch in eval mode (``torch.utils.flop_counter.FlopCounterMode`` FLOPs
/ 2) and the median milliseconds of one training iteration (the trainer's step: forward, loss,
backward, SGD; bf16 autocast where the CPU has it) at the plan's patch and batch, in wall time
or, with ``--clock cpu``, in CPU time of one thread (little changed by other load).

``--cores 0,1`` runs as many variants side by side, each pinned to one of those cores with one
thread (each then plans and trains as on a one-core machine). ``--seed`` is the training seed of
every variant (default 1), to check whether a ranking survives another seed.

Printed: the CPU model, torch threads and the load before and after every variant; compare rows
of one run only (the machine may be shared). ``results.json`` keeps every row; a variant rerun
alone with the same budget and seed replaces its row.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench_losses import VARIANTS as LOSS_VARIANTS
from bench_train_budget import CLASSES, brain_data, cpu_model, load, run_medseg, score

VARIANTS: tuple[tuple[str, dict], ...] = (
    ("dynunet", {}),
    ("dynunet_S", {"network.size": "S"}),
    ("dynunet_L", {"network.size": "L"}),
    ("dynunet_residual", {"network.residual": True}),
    # memory-lean training: the same network, activations recomputed in the backward pass
    ("dynunet_checkpointed", {"network.gradient_checkpointing": True}),
    ("unet", {"network.architecture": "unet"}),
    ("resenc_unet", {"network.architecture": "resenc_unet"}),
    ("attention_unet", {"network.architecture": "attention_unet"}),
    ("hybrid_unet", {"network.architecture": "hybrid_unet"}),
    ("unetr_S", {"network.architecture": "unetr", "network.size": "S"}),
    ("unetr", {"network.architecture": "unetr"}),
    ("swinunetr", {"network.architecture": "swinunetr"}),
    # planar configurations: slices along axis 0, then 2.5D (2 neighbours on each side), then
    # the three planes' 2.5D networks averaged (ENSEMBLES: the budget is split between them)
    ("2d", {"default_configuration": "2d"}),
    ("2.5d", {"default_configuration": "2.5d"}),
    ("multiplane", {"default_configuration": "2.5d"}),
    ("cascade", {}),
    # the label-map losses of bench_losses (its region variants need nested labels)
    *(
        (name, {"training.loss": loss, "training.extra_losses": extra})
        for name, (loss, extra, regions) in LOSS_VARIANTS.items()
        if not regions and (loss, extra) != ("dice_ce", {})
    ),
)
"""(name, plan overrides): every network and option compared. The first row is the default."""

STAGES = {"cascade": ("3d_lowres", "3d_cascade_fullres")}
"""Variants trained as several configurations in turn, each on an equal share of the budget."""

ENSEMBLES = {"multiplane": "multiplane"}
"""Variants that train one of the plan's ensembles; each member gets budget / members."""

PATCH_MULTIPLE = {"unetr": 16, "swinunetr": 32}
"""Architectures whose patch edges must be multiples of this: the planned patch is rounded up."""


def variant_overrides(name: str, plan) -> dict:
    """The overrides of ``name``, with the 3d patch rounded up where the network needs it and
    an ensemble's budget split between its members."""
    overrides = dict(dict(VARIANTS)[name])
    if name in ENSEMBLES:
        members = len(plan.ensembles[ENSEMBLES[name]])
        overrides["training.time_budget_s"] = plan.configuration().training.time_budget_s / members
    multiple = PATCH_MULTIPLE.get(overrides.get("network.architecture", ""))
    if multiple and "3d.patch_size" not in overrides:
        patch = plan.configuration("3d").patch_size
        overrides["3d.patch_size"] = [-(-p // multiple) * multiple for p in patch]
    return overrides


def run_variant(args: argparse.Namespace) -> None:
    """Child process: train, predict and score one variant; write ``<work>/<name>/row.json``."""
    from medseg.data import load_dataset
    from medseg.plan import PlanBudget, make_plan

    dataset_dir = brain_data(args.work)
    dataset = load_dataset(dataset_dir)
    plan = make_plan(dataset, budget=PlanBudget.for_device("cpu", time_budget_s=args.budget))
    overrides = variant_overrides(args.child, plan)
    out = args.work / args.child
    if out.exists():
        shutil.rmtree(out)
    stages = STAGES.get(args.child, (None,))
    budget = args.budget / len(stages)
    previous = train_stages(dataset, out, stages[:-1], budget, args)
    info = run_medseg(
        dataset,
        out,
        budget,
        seed=args.seed,
        overrides=overrides,
        device=args.device,
        cache_dir=args.work / "cache",
        probabilities=True,
        configuration=stages[-1] or ENSEMBLES.get(args.child),
        previous_stage=previous,
    )
    metrics = fold_metrics(out / "model")
    info["iterations"] = metrics.get("iterations")
    info.pop("curve", None)
    info.pop("val_cases", None)
    info.update(score(out / "pred", dataset_dir))
    info.update(extra_metrics(out / "pred", dataset_dir))
    train_only = (metrics.get("train_seconds") or 0) - (metrics.get("validation_seconds") or 0)
    info["s_per_iteration"] = train_only / max(1, info["iterations"] or 0)
    info["overrides"] = overrides
    info["parameters"] = parameters(plan, overrides, ENSEMBLES.get(args.child))
    if previous is not None:
        info["stages"] = list(stages)
        info["parameters"] = stage_parameters([previous, out / "model"])
    if args.device == "cuda":
        info["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        info["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (out / "row.json").write_text(json.dumps(info, indent=1))


def train_stages(dataset, out: Path, stages, budget_s: float, args) -> Path | None:
    """Train the first stages of a staged variant; the last one's model folder (or None)."""
    from medseg.plan import PlanBudget
    from medseg.train import train_model

    previous = None
    for stage in stages:
        train_model(
            dataset,
            out / stage,
            configuration=stage,
            folds="all",
            device=args.device,
            budget=PlanBudget.for_device("cpu", time_budget_s=budget_s),
            seed=args.seed,
            cache_dir=args.work / "cache",
            resume=False,
            previous_stage=previous,
        )
        previous = out / stage
    return previous


def stage_parameters(model_dirs) -> int:
    """Trainable parameters of every stage's network together."""
    from medseg.train import ModelFolder

    total = 0
    for path in model_dirs:
        model = ModelFolder.load(path)
        total += sum(p.numel() for p in model.build_network(model.folds[0]).parameters())
    return total


def fold_metrics(model_dir: Path) -> dict:
    """``fold_all/val_metrics.json``; for an ensemble folder, the members' times and
    iterations summed."""
    from medseg.train.ensemble_folder import ensemble_members, is_ensemble_folder

    folders = ensemble_members(model_dir) if is_ensemble_folder(model_dir) else [model_dir]
    rows = [json.loads((f / "fold_all" / "val_metrics.json").read_text()) for f in folders]
    keys = ("iterations", "train_seconds", "validation_seconds")
    return {key: sum(r.get(key) or 0 for r in rows) for key in keys}


def extra_metrics(pred_dir: Path, dataset_dir: Path) -> dict:
    """HD95 per class and its mean, Betti error and ECE (mean over held-out cases).

    The probabilities are the ``<case>_probabilities.nii.gz`` files beside the label maps.
    """
    from medseg.evaluate import evaluate_folders

    result = evaluate_folders(
        pred_dir,
        dataset_dir / "labelsTs",
        dataset_json=dataset_dir / "dataset.json",
        probabilities_dir=pred_dir,
        report=False,
    )
    rows = [r for r in result.rows if r["class"] in CLASSES]
    out = {f"hd95_{name}": _mean(r["hd95"] for r in rows if r["class"] == name) for name in CLASSES}
    out["hd95"] = _mean(out[f"hd95_{name}"] for name in CLASSES)
    out["betti_error"] = _mean(r.get("betti_error", math.nan) for r in rows)
    ece = result.summary.get("calibration", {}).get("ece_per_case", {})
    out["ece"] = _mean(v if v is not None else math.nan for v in ece.values())
    return out


def _mean(values) -> float:
    array = np.array([float(v) for v in values], dtype=float)
    return float(np.nanmean(array)) if np.isfinite(array).any() else math.nan


def parameters(plan, overrides: dict, ensemble: str | None = None) -> int:
    """Trainable parameters of the variant's network (summed over an ensemble's members)."""
    from medseg.plan import apply_overrides
    from medseg.train.networks import build_network

    changed = apply_overrides(plan, overrides)
    total = 0
    for name in changed.ensembles[ensemble] if ensemble else [changed.default_configuration]:
        config = changed.configuration(name)
        net = build_network(
            config.network,
            changed.input_channels(name),
            plan.num_classes,
            len(config.patch_size),
            patch_size=config.patch_size,
        )
        total += sum(p.numel() for p in net.parameters())
    return total


def costs(args: argparse.Namespace, names: list[str]) -> None:
    """Print parameters, MACs per patch and ms per training iteration of every variant."""
    from torch.utils.flop_counter import FlopCounterMode

    from medseg.data import load_dataset
    from medseg.plan import PlanBudget, apply_overrides, make_plan
    from medseg.train.calibrate import measure_iteration_seconds
    from medseg.train.networks import build_network

    dataset = load_dataset(brain_data(args.work))
    plan = make_plan(dataset, budget=PlanBudget.for_device("cpu", time_budget_s=args.budget))
    if args.clock == "cpu":
        # one thread: several spin-wait in parallel regions on a busy machine, which counts as
        # CPU time; one thread's CPU time is its work
        torch.set_num_threads(1)
    base = plan.configuration("3d")
    print(f"plan: 3d patch {list(base.patch_size)}, batch {base.batch_size}")
    what = "CPU-time ms (1 thread)" if args.clock == "cpu" else "wall ms"
    print(f"| variant | patch | parameters | GMACs per patch | {what} per iteration | load |")
    print("|---|---|---|---|---|---|")
    device = torch.device(args.device)
    for name in names:
        if name in STAGES:
            print(f"| {name} | (stages {', '.join(STAGES[name])}: see their own rows) |")
            continue
        changed = apply_overrides(plan, variant_overrides(name, plan))
        which = changed.default_configuration  # an ensemble: one member, the first
        config = changed.configuration(which)
        channels, ndim = changed.input_channels(which), len(config.patch_size)
        torch.manual_seed(0)
        net = build_network(
            config.network, channels, plan.num_classes, ndim, patch_size=config.patch_size
        ).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, channels, *config.patch_size))
        macs = counter.get_total_flops() / 2
        params = sum(p.numel() for p in net.parameters())
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        seconds = measure_iteration_seconds(
            changed, which, device=device, steps=args.steps, clock=clock
        )
        print(
            f"| {name} | {'x'.join(map(str, config.patch_size))} | {params / 1e6:.2f} M | "
            f"{macs / 1e9:.1f} | {seconds * 1000:.0f} | {load()} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per variant")
    parser.add_argument("--variants", default="", help="comma-separated names (default: all)")
    parser.add_argument("--work", type=Path, default=Path("bench_methods"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--costs", action="store_true", help="only the cost table")
    parser.add_argument("--steps", type=int, default=3, help="--costs: timed iterations")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="--costs: wall time, or CPU time of one thread (for a shared machine)",
    )
    parser.add_argument(
        "--cores",
        default="",
        help="comma-separated CPU cores: run that many variants side by side, one thread each",
    )
    parser.add_argument("--seed", type=int, default=1, help="training seed of every variant")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        run_variant(args)
        return
    known = [name for name, _ in VARIANTS]
    names = [n for n in args.variants.split(",") if n] or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(known)}")
    print(f"CPU: {cpu_model()}; torch threads {torch.get_num_threads()}; load {load()}")
    if args.costs:
        costs(args, names)
        return
    brain_data(args.work)  # written once, before any child reads it
    saved = args.work / "results.json"
    results = json.loads(saved.read_text()) if saved.is_file() else []
    for name, row in run_children(args, names):
        key = (name, args.budget, args.seed)
        results = [r for r in results if (r["variant"], r["budget_s"], r.get("seed", 1)) != key]
        results.append(row)
        saved.write_text(json.dumps(results, indent=1))
        print(json.dumps(row), flush=True)
    print(f"\nCPU: {cpu_model()}; load now {load()}")
    print_table(
        [
            r
            for r in results
            if r["variant"] in names
            and r["budget_s"] == args.budget
            and r.get("seed", 1) == args.seed
        ]
    )


def run_children(args: argparse.Namespace, names: list[str]):
    """Run every variant in its own child process; yield ``(name, row)`` as each one ends.

    Without ``--cores`` the children run one after the other with the parent's threads. With
    ``--cores 0,1`` they run side by side, each pinned to one of those cores with one thread
    (so each plans, trains and is timed as on a one-core machine, and the rows stay comparable).
    """
    cores = [int(c) for c in args.cores.split(",") if c] if args.cores else [None]
    waiting, running = list(names), {}
    while waiting or running:
        while waiting and len(running) < len(cores):
            core = next(c for c in cores if c not in {r[1] for r in running.values()})
            name = waiting.pop(0)
            command = [sys.executable, __file__, "--child", name, "--work", str(args.work)]
            command += ["--budget", str(args.budget), "--device", args.device]
            command += ["--seed", str(args.seed)]
            env = dict(os.environ)
            if core is not None:
                command = ["taskset", "-c", str(core), *command]
                env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            log = open(args.work / f"{name}.log", "w")  # noqa: SIM115 (closed when it ends)
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            running[name] = (process, core, log, load())
        time.sleep(1)
        for name in [n for n, (p, *_rest) in running.items() if p.poll() is not None]:
            process, core, log, before = running.pop(name)
            log.close()
            yield name, _child_row(args, name, process.returncode, before, core)


def _child_row(args, name: str, returncode: int, before: str, core) -> dict:
    """The row a child wrote, or its error (the last line of its log)."""
    row_file = args.work / name / "row.json"
    if returncode or not row_file.is_file():
        lines = (args.work / f"{name}.log").read_text().strip().splitlines()
        row = {"variant": name, "budget_s": args.budget, "error": (lines or ["no output"])[-1]}
    else:
        row = json.loads(row_file.read_text())
        row.update(variant=name, budget_s=args.budget)
    row.update(seed=args.seed, load_before=before, load_after=load(), device=args.device, core=core)
    return row


def print_table(rows: list[dict]) -> None:
    """The Markdown table of docs/methods.md and benchmarks/RESULTS.md."""
    print(
        "| variant | budget s | iterations | s/it | GM Dice | WM Dice | lesion Dice | HD95 mm "
        "| lesion F1 (TP/FP/FN) | ECE | Betti error | parameters | peak MiB | load before / after |"
    )
    print("|---|" + "---|" * 13)
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | {r['budget_s']:g} | failed: {r['error']} |" + " |" * 11)
            continue
        les = r["lesions"]
        print(
            f"| {r['variant']} | {r['budget_s']:g} | {r['iterations']} | "
            f"{r['s_per_iteration']:.2f} | {r['dice_grey_matter']:.3f} | "
            f"{r['dice_white_matter']:.3f} | {r['dice_lesion']:.3f} | {r['hd95']:.2f} | "
            f"{r['lesion_f1']:.2f} ({les['tp']:g}/{les['fp']:g}/{les['fn']:g}) | "
            f"{r['ece']:.3f} | {r['betti_error']:.2f} | {r['parameters'] / 1e6:.2f} M | "
            f"{r['peak_memory_mib']:.0f} | {r['load_before']} / {r['load_after']} |"
        )


if __name__ == "__main__":
    main()
