"""medseg against nnU-Net v2 on the built-in brain example: same data, same training wall time.

Plain script: ``python benchmarks/bench_train_vs_nnunet.py [--seconds 300] [--work DIR]``.
Needs the separate nnU-Net environment built by ``benchmarks/nnunet_env.sh`` (never install
nnunetv2 into medseg's environment: it pulls a CUDA torch).

1. Writes ``make_brain_example(cases=12, test_cases=4, seed=0, spacing_mm=2.0)`` as
   ``nnUNet_raw/Dataset001_BrainExample`` (it already is in nnU-Net's raw format).
2. medseg: ``train_model(..., folds="all", device="cpu")`` with a CPU plan whose epochs are fitted
   to ``--seconds`` of training (``PlanBudget.for_device("cpu", time_budget_s=...)``).
3. nnU-Net: ``nnUNetv2_plan_and_preprocess`` (stock ``nnUNetPlans``, 3d_fullres), then, in the
   nnU-Net environment, a driver script trains fold ``all`` on the CPU with a subclass of the
   stock ``nnUNetTrainer`` that is unchanged except that its single epoch stops after
   ``--seconds`` of training iterations (stock: 1000 epochs x 250 iterations) and it skips the
   final sliding-window validation of the training cases. The subclass is instantiated
   directly: nnU-Net 2.8.1 finds trainers by name by importing every trainer module of its
   package, one of which needs timm (not installed). The checkpoint then names the stock
   ``nnUNetTrainer`` (same network) so that ``nnUNetPredictor`` can rebuild the network.
4. Both predict the held-out cases without mirroring TTA (``fast=True`` /
   ``use_mirroring=False``), tile step 0.5 and Gaussian weighting; both are scored with
   ``medseg.evaluate.evaluate_folders`` (NSD at 2 mm).

Printed: Dice, NSD and lesion F1 per class, training iterations, training and prediction wall
time of both sides, plus ``uptime`` load averages before and after (the CPU may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

DRIVER = '''
# Runs inside the nnU-Net environment: python driver.py train|predict ARGS
import json, os, sys, time
import torch
from batchgenerators.utilities.file_and_folder_operations import join, load_json
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_BenchSeconds(nnUNetTrainer):
    """Stock nnUNetTrainer; one epoch that ends after NNUNET_BENCH_SECONDS of training."""

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = 100000
        self.num_val_iterations_per_epoch = 1

    def run_training(self):
        budget = float(os.environ["NNUNET_BENCH_SECONDS"])
        self.on_train_start()
        self.on_epoch_start()
        self.on_train_epoch_start()
        start = time.perf_counter()
        outputs = []
        while time.perf_counter() - start < budget:
            outputs.append(self.train_step(next(self.dataloader_train)))
        seconds = time.perf_counter() - start
        self.on_train_epoch_end(outputs)
        with torch.no_grad():
            self.on_validation_epoch_start()
            val = [self.validation_step(next(self.dataloader_val))]
            self.on_validation_epoch_end(val)
        self.on_epoch_end()
        self.on_train_end()
        return {"iterations": len(outputs), "iteration_seconds": seconds}


def main():
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    if sys.argv[1] == "train":
        name = sys.argv[2]
        plans = load_json(join(nnUNet_preprocessed, name, "nnUNetPlans.json"))
        plans["continue_training"] = False
        dataset_json = load_json(join(nnUNet_preprocessed, name, "dataset.json"))
        trainer = nnUNetTrainer_BenchSeconds(
            plans, "3d_fullres", "all", dataset_json, device=torch.device("cpu")
        )
        report = trainer.run_training()
        # nnU-Net looks trainers up by name inside its own package (and, in 2.8.1, imports every
        # trainer module on the way, one of which needs timm): record the stock class, whose
        # network is the same, so that nnUNetPredictor can rebuild the network.
        checkpoint_path = join(trainer.output_folder, "checkpoint_final.pth")
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        checkpoint["trainer_name"] = "nnUNetTrainer"
        torch.save(checkpoint, checkpoint_path)
        report["model_folder"] = os.path.dirname(trainer.output_folder)
        print("BENCH_REPORT", json.dumps(report))
    else:
        model_folder, source, out = sys.argv[2:5]
        predictor = nnUNetPredictor(
            tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
            perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False,
        )
        predictor.initialize_from_trained_model_folder(
            model_folder, ("all",), "checkpoint_final.pth"
        )
        predictor.predict_from_files(source, out, save_probabilities=False, overwrite=True,
                                     num_processes_preprocessing=1,
                                     num_processes_segmentation_export=1)


if __name__ == "__main__":
    main()
'''


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _run(cmd: list[str], env: dict[str, str], log: Path) -> float:
    """Run ``cmd`` with its output in ``log``; return its wall time in seconds."""
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {done.returncode}); see {log}")
    return seconds


def nnunet_env(work: Path, venv: Path, seconds: float, threads: int) -> dict[str, str]:
    (work / "nnunet_driver.py").write_text(DRIVER)
    return {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "nnUNet_raw": str(work / "nnUNet_raw"),
        "nnUNet_preprocessed": str(work / "nnUNet_preprocessed"),
        "nnUNet_results": str(work / "nnUNet_results"),
        "nnUNet_compile": "f",
        "nnUNet_n_proc_DA": str(max(1, (os.cpu_count() or 2) - 1)),
        "NNUNET_BENCH_SECONDS": str(seconds),
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": str(threads),
    }


def run_nnunet(
    dataset: Path, work: Path, venv: Path, seconds: float, threads: int
) -> dict[str, float]:
    env = nnunet_env(work, venv, seconds, threads)
    bin_ = venv / "bin"
    cores = str(os.cpu_count() or 2)
    plan_s = _run(
        [str(bin_ / "nnUNetv2_plan_and_preprocess"), "-d", "1", "-c", "3d_fullres",
         "-np", cores, "--verify_dataset_integrity"],
        env, work / "nnunet_plan.log",
    )  # fmt: skip
    driver = [str(venv / "bin" / "python"), str(work / "nnunet_driver.py")]
    train_s = _run([*driver, "train", dataset.name], env, work / "nnunet_train.log")
    lines = (work / "nnunet_train.log").read_text().splitlines()
    report = json.loads(next(x for x in lines if x.startswith("BENCH_REPORT ")).split(" ", 1)[1])
    predict_s = _run(
        [*driver, "predict", report["model_folder"], str(dataset / "imagesTs"),
         str(work / "pred_nnunet")],
        env, work / "nnunet_predict.log",
    )  # fmt: skip
    return {
        "plan_preprocess_s": plan_s,
        "train_s": train_s,
        "iteration_s": report["iteration_seconds"],
        "iterations": report["iterations"],
        "predict_s": predict_s,
    }


def _progress(done: int, total: int) -> None:
    if done % 25 == 0 or done == total:
        print(f"medseg iteration {done}/{total} at {time.strftime('%H:%M:%S')}", flush=True)


def run_medseg(dataset: Path, work: Path, seconds: float) -> dict[str, float]:
    import csv

    from medseg.infer import Predictor
    from medseg.infer.files import predict_files
    from medseg.plan import PlanBudget
    from medseg.train import train_model

    start = time.perf_counter()
    result = train_model(
        dataset,
        work / "medseg_model",
        folds="all",
        device="cpu",
        budget=PlanBudget.for_device("cpu", time_budget_s=seconds),
        on_progress=_progress,
    )
    train_s = time.perf_counter() - start
    fold = result.folds[0]
    with (fold.path / "log.csv").open() as f:
        rows = list(csv.DictReader(f))
    plan = json.loads((result.model_dir / "plan.json").read_text())
    config = plan["configurations"][result.configuration]
    per_epoch = int(config["training"]["iterations_per_epoch"])
    start = time.perf_counter()
    predictor = Predictor(result.model_dir, device="cpu", fast=True)
    report = predict_files(predictor, dataset / "imagesTs", work / "pred_medseg")
    predict_s = time.perf_counter() - start
    if not report.ok:
        raise RuntimeError(f"medseg prediction failed: {report.failures}")
    return {
        "train_s": train_s,
        "iteration_s": sum(float(r["epoch_s"]) for r in rows),
        "iterations": per_epoch * len(rows),
        "predict_s": predict_s,
        "network": f"filters {config['network']['filters']}, patch {config['patch_size']}, "
        f"batch {config['batch_size']}",
    }


def score(pred: Path, dataset: Path) -> dict[str, dict[str, float | None]]:
    from medseg.evaluate import evaluate_folders

    result = evaluate_folders(
        pred,
        dataset / "labelsTs",
        dataset_json=dataset / "dataset.json",
        nsd_tolerance_mm=2.0,
        report=False,
    )
    out = {}
    for name, stats in result.summary["classes"].items():
        out[name] = {m: (stats.get(m) or {}).get("mean") for m in ("dice", "nsd", "lesion_f1")}
    return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="training time per side")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nnunet-bench"))
    parser.add_argument("--nnunet-venv", type=Path, default=Path("/tmp/nnunet-venv"))
    parser.add_argument("--train-cases", type=int, default=12)
    parser.add_argument("--test-cases", type=int, default=4)
    parser.add_argument(
        "--lesions",
        nargs="*",
        default=["lesion"],
        help="classes whose lesion-wise F1 is printed (connected components; not for tissues)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="torch threads on both sides (1 avoids OpenMP spin-waits when the CPU is shared)",
    )
    args = parser.parse_args()

    from medseg.data.example import make_brain_example

    if args.work.exists():
        shutil.rmtree(args.work)
    dataset = args.work / "nnUNet_raw" / "Dataset001_BrainExample"
    make_brain_example(
        dataset, cases=args.train_cases, test_cases=args.test_cases, seed=0, spacing_mm=2.0
    )
    import torch

    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {args.threads} threads; {args.train_cases} training + "
        f"{args.test_cases} held-out cases at 2 mm; {args.seconds:.0f} s training per side; "
        "no TTA on either side"
    )
    print("before:", _uptime(), flush=True)
    ours = run_medseg(dataset, args.work, args.seconds)
    print("medseg done:", _uptime(), json.dumps(ours), flush=True)
    peer = run_nnunet(dataset, args.work, args.nnunet_venv, args.seconds, args.threads)
    print("nnU-Net done:", _uptime(), json.dumps(peer), flush=True)
    s_ours = score(args.work / "pred_medseg", dataset)
    s_peer = score(args.work / "pred_nnunet", dataset)

    print("\n| class | metric | medseg | nnU-Net v2 |")
    print("|---|---|---|---|")
    for name in s_ours:
        for metric in ("dice", "nsd", "lesion_f1"):
            a, b = s_ours[name][metric], s_peer.get(name, {}).get(metric)
            if (a is None and b is None) or (metric == "lesion_f1" and name not in args.lesions):
                continue
            print(f"| {name} | {metric} | {_fmt(a)} | {_fmt(b)} |")
    print(f"| training iterations | | {ours['iterations']} | {peer['iterations']} |")
    print(
        f"| s / iteration | | {ours['iteration_s'] / max(ours['iterations'], 1):.2f} | "
        f"{peer['iteration_s'] / max(peer['iterations'], 1):.2f} |"
    )
    print(
        f"| training wall time (s) | | {ours['train_s']:.0f} (incl. fingerprint, plan, "
        f"preprocess) | {peer['train_s']:.0f} (+ {peer['plan_preprocess_s']:.0f} plan and "
        f"preprocess) |"
    )
    print(
        f"| prediction wall time, {args.test_cases} cases (s) | | {ours['predict_s']:.1f} | "
        f"{peer['predict_s']:.1f} |"
    )
    print(f"medseg network: {ours['network']}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
