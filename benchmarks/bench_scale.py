"""medseg beyond one process: Ray batch prediction and the onnxruntime engine.

Plain script: ``python benchmarks/bench_scale.py [--cases 8] [--repeats 5]``.

1. **Ray throughput**: the same ``--cases`` synthetic cases (96 x 192 x 192 voxels, 1.0 x 0.8 x
   0.8 mm) predicted by a random-weight 3D model (DynUNet 8-16-32-64, patch 32 x 48 x 48,
   target spacing 2.0 x 1.6 x 1.6 mm, in-plane mirroring) with the plain single-process
   :class:`~medseg.infer.Predictor` (1 torch thread) and with :func:`medseg.scale.predict_with_ray`
   at 1 and 2 workers of 1 CPU each. Cases/min count the whole call: Ray start-up, one model load
   per worker, reading and writing. Every Ray output is checked equal to the plain predictor's.
   Peak resident memory per worker comes from each worker's ``getrusage``; the plain
   predictor's is this process's (it also holds the benchmark's own imports).
2. **onnxruntime vs PyTorch per window**: the fold network exported by
   :func:`medseg.scale.onnx_export.onnx_bytes`, run on a batch of 2 windows of the patch with
   1 thread each; median latency per window after a warm-up, and the agreement of the argmax
   labels and the largest logit difference against PyTorch on the same input.

The machine may be shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchtools import cpu_model
from medseg.infer import Predictor
from medseg.io import Image, read_image, write_image
from medseg.plan.plan import (
    ChannelNormalization,
    Configuration,
    NetworkConfig,
    Plan,
    TrainingConfig,
)
from medseg.train.model_folder import ModelFolder, save_fold, save_model_folder
from medseg.train.networks import build_network

PATCH = (32, 48, 48)
SHAPE = (96, 192, 192)
SPACING = (1.0, 0.8, 0.8)


def make_model(path: Path) -> Path:
    """A one-fold random-weight 3D model folder (the bench_predict network shape)."""
    network = NetworkConfig(
        filters=(8, 16, 32, 64),
        kernel_sizes=((3, 3, 3),) * 4,
        strides=((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2)),
        deep_supervision_heads=1,
    )
    config = Configuration(
        name="3d",
        spacing=(2.0, 1.6, 1.6),
        patch_size=PATCH,
        batch_size=2,
        network=network,
        training=TrainingConfig(mirror_axes=(1, 2)),
    )
    plan = Plan(
        dataset_name="Bench",
        channel_names={0: "CT"},
        labels={"background": 0, "organ": 1, "lesion": 2},
        num_classes=3,
        normalization=(ChannelNormalization(scheme="zscore"),),
        configurations={"3d": config},
        default_configuration="3d",
    )
    save_model_folder(path, plan, configuration="3d")
    torch.manual_seed(0)
    save_fold(path, 0, build_network(network, in_channels=1, out_channels=3, ndim=3))
    return path


def make_cases(folder: Path, n: int) -> None:
    """``n`` noisy ellipsoid volumes ``case{i}.nii.gz``."""
    folder.mkdir(parents=True, exist_ok=True)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grid))
    for i in range(n):
        rng = np.random.default_rng(i)
        array = np.where(radius < 0.9, 40 + 40 * (radius < 0.4), -100) + rng.normal(0, 10, SHAPE)
        image = Image.from_array(array[None].astype(np.float32), SPACING)
        write_image(image, folder / f"case{i}.nii.gz")


def bench_ray(root: Path, model: Path, n: int) -> None:
    from medseg.scale import predict_with_ray

    inputs = root / "inputs"
    make_cases(inputs, n)
    torch.set_num_threads(1)
    start = time.perf_counter()
    plain = Predictor(model, device="cpu").predict_files(inputs, root / "plain")
    plain_s = time.perf_counter() - start
    assert plain.ok, plain.failures
    plain_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n1. Ray batch prediction, {n} cases of {SHAPE}, 1 CPU per worker")
    print(f"{'engine':<28} | {'wall s':>7} | {'cases/min':>9} | {'vs plain':>8} | peak RSS MiB")
    print(
        f"{'plain Predictor (1 thread)':<28} | {plain_s:7.1f} | {60 * n / plain_s:9.1f} | "
        f"{1.0:7.2f}x | {plain_peak:.0f} (this process)"
    )
    for workers in (1, 2):
        out = root / f"ray{workers}"
        start = time.perf_counter()
        report = predict_with_ray(model, inputs, out, workers=workers, cpus_per_worker=1)
        seconds = time.perf_counter() - start
        assert report.ok, report.failures
        for case in plain.outputs:
            ours = read_image(out / case.labels_path.name).array
            assert np.array_equal(ours, read_image(case.labels_path).array), case.case_id
        peaks = ", ".join(f"{w.peak_rss_mib:.0f}" for w in report.workers)
        print(
            f"{f'Ray, {workers} worker(s)':<28} | {seconds:7.1f} | {60 * n / seconds:9.1f} | "
            f"{plain_s / seconds:7.2f}x | {peaks} (per worker)"
        )
    print("Ray outputs: all label maps identical to the plain predictor's")


def bench_onnx(model: Path, repeats: int) -> None:
    import onnxruntime as ort

    from medseg.scale.onnx_export import onnx_bytes

    torch.set_num_threads(1)
    folder = ModelFolder.load(model)
    network = folder.build_network(0)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        onnx_bytes(folder, 0), options, providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(0).normal(size=(2, 1, *PATCH)).astype(np.float32)
    tensor = torch.from_numpy(x)

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return network(tensor).numpy()

    def run_onnx() -> np.ndarray:
        return session.run(None, {"image": x})[0]

    times = {}
    for name, fn in (("PyTorch", run_torch), ("onnxruntime", run_onnx)):
        fn()
        laps = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            laps.append(time.perf_counter() - start)
        times[name] = statistics.median(laps) / x.shape[0]
    ref, got = run_torch(), run_onnx()
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    print(f"\n2. One window {PATCH}, batch 2, 1 thread, median of {repeats}")
    base = times["PyTorch"]
    for name, seconds in times.items():
        print(f"{name:<12} | {1000 * seconds:8.1f} ms/window | {base / seconds:5.2f}x vs PyTorch")
    print(f"argmax agreement {agree:.6f}, max |logit difference| {np.abs(ref - got).max():.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()}")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_model(root / "model")
        bench_onnx(model, args.repeats)
        if not args.skip_ray:
            bench_ray(root, model, args.cases)
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
