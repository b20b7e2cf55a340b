"""medseg's defaults vs a hand-tuned MONAI DynUNet loop and nnU-Net v2: same data, same budget.

Plain script: ``python benchmarks/bench_train_budget.py [--budgets 600 300 1200] [--work DIR]``.

1. Writes ``make_brain_example(cases=24, test_cases=8, seed=7, lesion_counts=(1, 10))`` in
   nnU-Net's raw layout: another seed, more cases and fewer lesions per case than the demo
   (20 cases, seed 0, 2-15 lesions), so nothing is tuned to the demo's data.
2. For each budget (seconds of training), one after the other on the same cores:

   * **medseg**: ``train_model(..., folds="all", budget=PlanBudget.for_device("cpu",
     time_budget_s=budget))`` with every default (plan, time-budgeted schedule, whole-case
     validation inside the budget and best-model choice, rare-class sampling and loss), the
     post-processing ``medseg train`` chooses on its validation cases
     (``postprocessing_from_training``; ``--no-postprocess`` skips it), then ``Predictor``
     without mirroring TTA on the held-out cases.
   * **monai** (plain PyTorch + MONAI, hand-tuned as in ``docs/train.md``): ``DynUNet`` of the
     plan's filters, kernels and strides without deep supervision, the plan's patch and batch,
     bf16 autocast + ``channels_last_3d`` where the CPU has AVX-512 BF16, SGD Nesterov (momentum
     0.99, lr 0.01, weight decay 3e-5) with poly decay over elapsed / budget, ``DiceCELoss``
     with CE weight 10 on the lesion label, 60 % of patches centred on a lesion voxel, random
     flips; on medseg's preprocessed cache (same crop, normalisation and spacing). It predicts
     the held-out cases with MONAI's sliding window (overlap 0.5, Gaussian), brought back to the
     original grid by ``medseg.preprocess.restore_to_original``. Its learning curve is measured
     with the clock paused (free for it) on the cases medseg validates on.
   * **nnunet** (needs the environment of ``benchmarks/nnunet_env.sh``, ``--nnunet-venv``):
     stock ``nnUNetPlans`` 3d_fullres and ``nnUNetTrainer``, its one epoch stopped after the
     budget (``bench_train_vs_nnunet.run_nnunet``), predicted without mirroring.

3. Every prediction folder is scored by ``medseg.evaluate.evaluate_folders``: Dice per class
   (mean over cases), and lesion F1 from one-to-one matched components (IoU > 0.5) with
   TP/FP/FN summed over the held-out cases.

Ablations: ``--set KEY=VALUE`` (repeatable, as ``medseg train --set``) changes the medseg run's
plan, ``--name`` labels its row (default: the overrides), ``--train-seed`` and ``--threads`` set
the training seed and torch threads; e.g. ``--methods medseg --threads 1 --name topk --set
training.loss=dice --set 'training.extra_losses={"topk_ce": 1}'``. Rows are kept per (name,
budget), so a table of variants builds up in one ``results.json``.

Printed: one table row per method and budget with iterations, training seconds, GM/WM/lesion
Dice, lesion F1 and the ``uptime`` load before and after each run, and the CPU model (the
machine may be shared: compare rows of the same run). ``curve.png`` plots validation Dice
(mean of the classes, training cases) against training time, with each method's held-out
mean Dice as a star; ``results.json`` holds everything.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchtools import cpu_model, load

CLASSES = ("grey_matter", "white_matter", "lesion")
LESION = 3


def brain_data(
    work: Path, *, cases: int = 24, test_cases: int = 8, seed: int = 7, lesions=(1, 10)
) -> Path:
    """The benchmark's brains in nnU-Net's raw layout under ``work`` (written once)."""
    from medseg.data.example import make_brain_example

    # nnU-Net's raw layout, so that nnU-Net reads the very same files
    dataset_dir = work / "nnUNet_raw" / "Dataset001_BrainBench"
    if not (dataset_dir / "dataset.json").is_file():
        make_brain_example(
            dataset_dir,
            cases=cases,
            test_cases=test_cases,
            seed=seed,
            lesion_counts=tuple(lesions),
        )
    return dataset_dir


def run_medseg(
    dataset,
    out: Path,
    budget_s: float,
    seed: int,
    *,
    overrides: dict | None = None,
    device: str = "cpu",
    cache_dir: Path | None = None,
    probabilities: bool = False,
    configuration: str | None = None,
    previous_stage: Path | None = None,
    postprocess: bool = True,
    fp32_cpu: bool = False,
) -> dict:
    """Train as ``medseg train`` does (post-processing chosen on its validation unless
    ``postprocess`` is false), then predict the held-out cases. ``fp32_cpu`` plans and trains
    as on a CPU without bf16 instructions (the planner's 1.0 s reference step, no autocast)."""
    from dataclasses import asdict, replace

    from medseg.infer import load_predictor, postprocessing_from_training
    from medseg.infer.files import predict_files
    from medseg.plan import PlanBudget
    from medseg.train import train_model

    plan_budget = PlanBudget.for_device("cpu", time_budget_s=budget_s)
    if fp32_cpu:
        plan_budget = replace(plan_budget, reference_iteration_s=1.0)
        overrides = {**(overrides or {}), "training.mixed_precision": "off"}
    tic = time.perf_counter()
    result = train_model(
        dataset,
        out / "model",
        folds="all",
        device=device,
        budget=plan_budget,
        overrides=overrides,
        seed=seed,
        cache_dir=cache_dir,
        resume=False,
        configuration=configuration,
        previous_stage=previous_stage,
    )
    wall = time.perf_counter() - tic
    choice = postprocessing_from_training(out / "model") if postprocess else None
    fold = result.folds[0].path
    metrics = json.loads((fold / "val_metrics.json").read_text())
    curve = []
    for row in _csv_rows(fold / "log.csv"):
        if not math.isnan(float(row["mean_dice"])):
            curve.append((float(row["elapsed_s"]), float(row["mean_dice"])))
    predictor = load_predictor(out / "model", device=device, tta=False)
    tic = time.perf_counter()
    images = [c.image_paths[0] for c in dataset.test_cases]
    predict_files(predictor, images, out / "pred", probabilities=probabilities)
    return {
        "iterations": metrics.get("iterations"),
        "train_s": metrics.get("train_seconds"),
        "wall_s": round(wall, 1),
        "predict_s": round(time.perf_counter() - tic, 1),
        "curve": curve,
        "val_cases": metrics.get("val_cases", []),
        "postprocessing": None if choice is None else asdict(choice.rules),
    }


def _csv_rows(path: Path) -> list[dict]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


class MonaiLoop:
    """The hand-tuned loop: plain MONAI DynUNet, DiceCE, SGD, lesion-centred patches, flips."""

    def __init__(self, plan, cache, ids, seed: int) -> None:
        from monai.losses import DiceCELoss
        from monai.networks.nets import DynUNet

        from medseg.train.trainer import _cpu_has_bf16

        config = plan.configuration("3d")
        cfg = config.network
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.dtype = torch.bfloat16 if _cpu_has_bf16() else None
        self.fmt = torch.channels_last_3d if self.dtype is not None else torch.contiguous_format
        net = DynUNet(
            spatial_dims=3,
            in_channels=len(plan.channel_names),
            out_channels=plan.num_classes,
            kernel_size=[list(k) for k in cfg.kernel_sizes],
            strides=[list(s) for s in cfg.strides],
            upsample_kernel_size=[list(s) for s in cfg.strides[1:]],
            filters=list(cfg.filters),
            norm_name=("INSTANCE", {"affine": True}),
            act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
        )
        self.net = net.to(memory_format=self.fmt)
        self.opt = torch.optim.SGD(
            self.net.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5
        )
        weight = torch.ones(plan.num_classes)
        weight[LESION] = 10.0
        self.loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, weight=weight)
        self.patch, self.batch = tuple(config.patch_size), config.batch_size
        self.arrays = [cache.load(i, mmap=False)[:2] for i in ids]
        self.lesions = [cache.foreground_locations(i).get(LESION, np.zeros((0, 3))) for i in ids]
        self.with_lesion = [k for k, v in enumerate(self.lesions) if len(v)]

    def batch_of_patches(self) -> tuple[torch.Tensor, torch.Tensor]:
        from medseg.train.sampling import crop_padded

        images, labels = [], []
        for _ in range(self.batch):
            centred = self.with_lesion and self.rng.random() < 0.6
            k = (
                self.with_lesion[int(self.rng.integers(len(self.with_lesion)))]
                if centred
                else int(self.rng.integers(len(self.arrays)))
            )
            image, label = self.arrays[k]
            shape = np.array(image.shape[1:])
            if centred:
                voxel = self.lesions[k][int(self.rng.integers(len(self.lesions[k])))]
                start = np.asarray(voxel) - np.array(self.patch) // 2
            else:
                pairs = zip(shape, self.patch, strict=True)
                start = [int(self.rng.integers(max(1, s - p + 1))) for s, p in pairs]
            img = crop_padded(image, start, self.patch)
            lab = crop_padded(label, start, self.patch)
            for axis in range(1, 4):
                if self.rng.random() < 0.5:
                    img, lab = np.flip(img, axis), np.flip(lab, axis)
            images.append(np.ascontiguousarray(img))
            labels.append(np.ascontiguousarray(lab))
        image = torch.from_numpy(np.stack(images).astype(np.float32))
        label = torch.from_numpy(np.stack(labels).astype(np.int64))
        return image.contiguous(memory_format=self.fmt), label

    def step(self, lr: float) -> float:
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.net.train()
        image, label = self.batch_of_patches()
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None):
            logits = self.net(image)
        loss = self.loss_fn(logits.float(), label)
        loss.backward()
        self.opt.step()
        return float(loss.item())

    @torch.no_grad()
    def logits(self, array: np.ndarray) -> torch.Tensor:
        from monai.inferers import sliding_window_inference

        self.net.eval()

        def predict(x: torch.Tensor) -> torch.Tensor:
            x = x.contiguous(memory_format=self.fmt)
            with torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None):
                return self.net(x).float()

        x = torch.from_numpy(np.asarray(array, dtype=np.float32))[None]
        return sliding_window_inference(
            x, self.patch, 4, predict, overlap=0.5, mode="gaussian", sigma_scale=0.125
        )[0]


def run_monai(plan, cache, ids, dataset, out: Path, budget_s: float, seed: int, val_ids) -> dict:
    from medseg.io import write_image
    from medseg.plan.cases import read_case
    from medseg.preprocess import preprocess_image, restore_to_original
    from medseg.train.schedule import validation_points
    from medseg.train.validation import mean_over_cases, validate_cases

    loop = MonaiLoop(plan, cache, ids, seed)
    points = list(validation_points(3))
    curve, iterations, paused = [], 0, 0.0
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start - paused
        if elapsed >= budget_s:
            break
        loop.step(0.01 * (1 - elapsed / budget_s) ** 0.9)
        iterations += 1
        elapsed = time.perf_counter() - start - paused
        if points and elapsed >= points[0] * budget_s and len(points) > 1:
            points.pop(0)
            tic = time.perf_counter()
            dice = mean_over_cases(
                validate_cases(
                    loop.net,
                    cache,
                    val_ids,
                    plan,
                    "3d",
                    device=torch.device("cpu"),
                    dtype=loop.dtype,
                )
            )
            curve.append((round(elapsed, 1), float(np.nanmean(list(dice.values())))))
            paused += time.perf_counter() - tic
    train_s = time.perf_counter() - start - paused
    dice = mean_over_cases(
        validate_cases(
            loop.net, cache, val_ids, plan, "3d", device=torch.device("cpu"), dtype=loop.dtype
        )
    )
    curve.append((round(train_s, 1), float(np.nanmean(list(dice.values())))))
    pred_dir = out / "pred"
    pred_dir.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    for case in dataset.test_cases:
        image, _ = read_case(case)
        array, props = preprocess_image(image, plan, "3d", case_id=case.case_id)
        label = restore_to_original(loop.logits(array), props, logits=True)
        write_image(label, pred_dir / f"{case.case_id}{dataset.file_ending}")
    return {
        "iterations": iterations,
        "train_s": round(train_s, 1),
        "wall_s": round(time.perf_counter() - start, 1),
        "predict_s": round(time.perf_counter() - tic, 1),
        "curve": curve,
    }


def score(pred_dir: Path, dataset_dir: Path) -> dict:
    from medseg.evaluate import evaluate_folders

    result = evaluate_folders(
        pred_dir,
        dataset_dir / "labelsTs",
        dataset_json=dataset_dir / "dataset.json",
        report=False,
    )
    out: dict[str, float] = {}
    for name in CLASSES:
        rows = [r for r in result.rows if r["class"] == name]
        out[f"dice_{name}"] = float(np.nanmean([float(r["dice"]) for r in rows]))
    lesion = [r for r in result.rows if r["class"] == "lesion"]
    tp, fp, fn = (
        sum(float(r.get(f"lesion_{k}", 0) or 0) for r in lesion) for k in ("tp", "fp", "fn")
    )
    out["lesion_f1"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
    out["lesion_dice_wise"] = float(
        np.nanmean([float(r.get("lesion_dice", math.nan)) for r in lesion])
    )
    out["lesions"] = {"tp": tp, "fp": fp, "fn": fn}
    return out


VISIBLE_CNR = 10.0
"""A lesion counts as visible when (shell mean - lesion mean) / shell SD * sqrt(voxels) >= this."""


def lesion_visibility(dataset_dir: Path) -> dict:
    """How many held-out lesions an ideal detector could see, and the lesion F1 that allows.

    Each lesion (26-connected component of the lesion label) is compared with the white matter
    in a 2-voxel shell around it: its contrast-to-noise ratio times the square root of its voxel
    count is the signal of a matched filter over the lesion. Lesions below ``VISIBLE_CNR`` are
    small and faint (the generator blurs every lesion's edge, which erases the contrast of
    1-8 voxel ones). ``f1_ceiling`` is the lesion F1 of a detector that finds every visible
    lesion exactly and nothing else.
    """
    from scipy import ndimage

    from medseg.io import read_image

    signals = []
    for label_path in sorted((dataset_dir / "labelsTs").glob("*.nii.gz")):
        case = label_path.name[: -len(".nii.gz")]
        image = read_image(dataset_dir / "imagesTs" / f"{case}_0000.nii.gz").array[0]
        reference = read_image(label_path).array[0]
        components, count = ndimage.label(reference == LESION, np.ones((3, 3, 3)))
        for k in range(1, count + 1):
            lesion = components == k
            shell = ndimage.binary_dilation(lesion, iterations=2) & ~lesion & (reference == 2)
            background = image[shell].astype(float)
            if background.size < 2 or background.std() == 0:
                signals.append(0.0)
                continue
            contrast = (background.mean() - image[lesion].mean()) / background.std()
            signals.append(float(contrast * np.sqrt(lesion.sum())))
    visible = sum(s >= VISIBLE_CNR for s in signals)
    total = len(signals)
    return {
        "lesions": total,
        "visible": visible,
        "f1_ceiling": 2 * visible / (2 * visible + total - visible) if total else math.nan,
    }


def plot(results: list[dict], path: Path) -> None:
    """Validation Dice against training time, one panel per budget, a line and colour per
    method; each run's held-out mean Dice is a star at its training time."""
    from matplotlib.figure import Figure

    budgets = sorted({r["budget_s"] for r in results})
    methods = sorted({r["method"] for r in results})
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    fig = Figure(figsize=(4.2 * len(budgets) + 0.6, 4.2), dpi=100)
    axes = fig.subplots(1, len(budgets), sharey=True, squeeze=False)[0]
    for ax, budget in zip(axes, budgets, strict=True):
        for r in (r for r in results if r["budget_s"] == budget):
            colour = colours[r["method"]]
            if r["curve"]:
                t, d = zip(*r["curve"], strict=True)
                ax.plot(t, d, marker="o", color=colour, label=f"{r['method']}, validation")
            held_out = np.mean([r[f"dice_{name}"] for name in CLASSES])
            ax.plot([r["train_s"]], [held_out], marker="*", markersize=13, color=colour,
                    ls="none", label=f"{r['method']}, held-out")  # fmt: skip
        ax.set(xlabel="training time (s)", title=f"budget {budget:g} s", ylim=(0, 1))
        ax.set_xlim(0, budget * 1.06)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    axes[0].set_ylabel("mean Dice of GM, WM, lesion")
    fig.suptitle("Validation (lines) and held-out (stars) Dice against training time", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")


def run_nnunet(dataset_dir: Path, out: Path, venv: Path, budget_s: float) -> dict:
    """nnU-Net v2's stock plan and trainer, training stopped after ``budget_s`` (no TTA).

    nnU-Net's folders (``nnUNet_preprocessed``, ``nnUNet_results``) and logs go next to
    ``nnUNet_raw``; the predictions are moved to ``out/pred``.
    """
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_train_vs_nnunet import run_nnunet as run

    work = dataset_dir.parent.parent
    info = run(dataset_dir, work, venv, budget_s, torch.get_num_threads())
    out.mkdir(parents=True, exist_ok=True)
    pred = out / "pred"
    if pred.exists():
        shutil.rmtree(pred)
    (work / "pred_nnunet").rename(pred)
    return {
        "iterations": info["iterations"],
        "train_s": round(info["iteration_s"], 1),
        "wall_s": round(info["train_s"], 1),
        "predict_s": round(info["predict_s"], 1),
        "curve": [],
    }


def _folder_name(name: str) -> str:
    """A run folder name from a row name (overrides carry brackets, quotes and spaces)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[600.0])
    parser.add_argument("--work", type=Path, default=Path("bench_train_budget"))
    parser.add_argument("--seed", type=int, default=7, help="data seed (the demo uses 0)")
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--test-cases", type=int, default=8)
    parser.add_argument(
        "--lesions", type=int, nargs=2, default=[1, 10], help="lesions per case (demo: 2 15)"
    )
    parser.add_argument(
        "--methods", nargs="+", default=["medseg", "monai", "nnunet"], help="medseg monai nnunet"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="plan override of the medseg run (an ablation; repeat for several)",
    )
    parser.add_argument("--name", help="row name of the medseg run (default: medseg + overrides)")
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument(
        "--fp32-cpu",
        action="store_true",
        help="medseg as on a CPU without bf16: the planner's fp32 step estimate, no autocast "
        "(add --set training.mixed_precision=off alone for the bf16 plan in fp32)",
    )
    parser.add_argument(
        "--no-postprocess",
        action="store_true",
        help="skip the post-processing medseg train chooses on its validation cases",
    )
    parser.add_argument(
        "--nnunet-venv",
        type=Path,
        default=Path("/tmp/nnunet-venv"),
        help="built by benchmarks/nnunet_env.sh; nnunet is skipped if absent",
    )
    args = parser.parse_args()
    from medseg.data import load_dataset
    from medseg.plan import PlanBudget, make_plan, parse_assignment
    from medseg.preprocess import preprocess_dataset
    from medseg.train.timed import _spread

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = dict(parse_assignment(a) for a in args.set)
    medseg_name = args.name or " ".join(["medseg", *args.set])
    args.work.mkdir(parents=True, exist_ok=True)
    dataset_dir = brain_data(
        args.work,
        cases=args.cases,
        test_cases=args.test_cases,
        seed=args.seed,
        lesions=args.lesions,
    )
    dataset = load_dataset(dataset_dir)
    ids = sorted(c.case_id for c in dataset.labelled)
    methods = list(args.methods)
    if "nnunet" in methods and not (args.nnunet_venv / "bin" / "python").is_file():
        print(f"nnU-Net skipped: no environment at {args.nnunet_venv} (benchmarks/nnunet_env.sh)")
        methods.remove("nnunet")
    print(f"CPU: {cpu_model()}; torch threads {torch.get_num_threads()}; load {load()}")
    print(
        f"data: {args.cases} training + {args.test_cases} held-out brains, seed {args.seed}, "
        f"{args.lesions[0]}-{args.lesions[1]} lesions per case"
    )
    seen = lesion_visibility(dataset_dir)
    print(
        f"held-out lesions: {seen['lesions']}, visible (CNR x sqrt(voxels) >= {VISIBLE_CNR:g}): "
        f"{seen['visible']}; lesion F1 ceiling if only those are found: {seen['f1_ceiling']:.2f}"
    )
    saved = args.work / "results.json"
    # rows of earlier runs for other methods or budgets are kept (one method may be rerun alone)
    results = json.loads(saved.read_text()) if saved.is_file() else []
    for budget in args.budgets:
        plan = make_plan(dataset, budget=PlanBudget.for_device("cpu", time_budget_s=budget))
        cache = preprocess_dataset(dataset, plan, "3d", args.work / "cache")
        val_ids = _spread(ids, plan.configuration("3d").training.max_val_cases)
        for method in methods:
            name = medseg_name if method == "medseg" else method
            out = args.work / f"{_folder_name(name)}_{int(budget)}"
            before = load()
            if method == "medseg":
                info = run_medseg(
                    dataset,
                    out,
                    budget,
                    seed=args.train_seed,
                    overrides=overrides or None,
                    postprocess=not args.no_postprocess,
                    fp32_cpu=args.fp32_cpu,
                )
            elif method == "monai":
                info = run_monai(plan, cache, ids, dataset, out, budget, args.train_seed, val_ids)
            else:
                info = run_nnunet(dataset_dir, out, args.nnunet_venv, budget)
            info.update(
                method=name,
                budget_s=budget,
                threads=torch.get_num_threads(),
                train_seed=args.train_seed,
                load_before=before,
                load_after=load(),
            )
            info.update(score(out / "pred", dataset_dir))
            results = [r for r in results if (r["method"], r["budget_s"]) != (name, budget)]
            results.append(info)
            print(json.dumps({k: v for k, v in info.items() if k != "curve"}), flush=True)
            saved.write_text(json.dumps(results, indent=1))
            plot(results, args.work / "curve.png")
    print(f"\nCPU: {cpu_model()}; load now {load()}")
    print(
        "| method | budget s | iterations | train s | GM Dice | WM Dice | lesion Dice "
        "| lesion F1 (TP/FP/FN) | load before / after |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        les = r["lesions"]
        print(
            f"| {r['method']} | {r['budget_s']:g} | {r['iterations']} | {r['train_s']} | "
            f"{r['dice_grey_matter']:.3f} | {r['dice_white_matter']:.3f} | "
            f"{r['dice_lesion']:.3f} | {r['lesion_f1']:.2f} "
            f"({les['tp']:g}/{les['fp']:g}/{les['fn']:g}) | {r['load_before']} / "
            f"{r['load_after']} |"
        )


if __name__ == "__main__":
    main()
