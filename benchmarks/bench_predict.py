"""medseg prediction speed and memory: sliding window against MONAI, then a CT-sized case.

Plain script: ``python benchmarks/bench_predict.py [--repeats 2] [--skip-ct]``.

1. **Sliding window vs MONAI** on the same random-weight DynUNet (medseg's plan network,
   filters 8-16-32-64, 3 classes), the same normalised input (40 x 72 x 72), patch
   (32, 48, 48), step 0.5 (MONAI ``overlap=0.5``), Gaussian weighting (sigma 1/8) and in-plane
   mirroring TTA (4 combinations; MONAI has no TTA, so it runs one sliding window per flipped
   input and the softmax outputs are averaged, as a MONAI user would write it). Reported: median
   time, time ratio, voxel agreement of the argmax labels and the largest probability
   difference. MONAI runs at its default ``sw_batch_size=1`` and with all 8 tiles of a pass
   in one batch; medseg at its default batch (16: 4 flips x 4 tiles per forward pass).
2. **CPU options**: ``channels_last`` and ``use_bf16`` against float32, label agreement.
3. **CT-sized case, end to end** (read .nii, preprocess, predict, restore, write) in a
   subprocess: 512 x 512 x 300 int16 at 0.78 x 0.78 x 1.0 mm, a 3-class model whose plan
   resamples to (5.0, 4.0, 4.0) mm so it runs on a CPU in about a minute; no TTA. Reported:
   wall time and peak RSS (``resource.getrusage``) of the subprocess.
4. **nnU-Net v2's predictor** (only with ``--nnunet-venv /tmp/nnunet-venv``, the separate
   environment of ``benchmarks/nnunet_env.sh``): in a subprocess of that environment,
   ``nnUNetPredictor.predict_sliding_window_return_logits`` on the same input with nnU-Net's
   ``PlainConvUNet`` built with the same stages as the medseg network (features 8-16-32-64,
   3x3x3 kernels, strides 1-2-2-2, two convolutions per stage, instance norm, leaky ReLU),
   same patch, step 0.5, Gaussian weighting and the same in-plane mirroring (4 passes).
   Random weights on both sides, different ones: only the times are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from medseg.infer.sliding_window import (
    WindowSettings,
    gaussian_importance_map,
    mirror_combinations,
    sliding_window_predict,
)
from medseg.plan.plan import (
    ChannelNormalization,
    Configuration,
    NetworkConfig,
    Plan,
    TrainingConfig,
)

PATCH = (32, 48, 48)
SHAPE = (40, 72, 72)
MIRROR = (1, 2)


def bench_plan(spacing: tuple[float, float, float]) -> Plan:
    """A 3-class CT plan with a 4-stage 8-16-32-64 DynUNet on (32, 48, 48) patches."""
    network = NetworkConfig(
        filters=(8, 16, 32, 64),
        kernel_sizes=((3, 3, 3),) * 4,
        strides=((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2)),
        deep_supervision_heads=1,
    )
    config = Configuration(
        name="3d",
        spacing=spacing,
        patch_size=PATCH,
        batch_size=2,
        network=network,
        training=TrainingConfig(mirror_axes=MIRROR),
    )
    return Plan(
        dataset_name="BenchCT",
        channel_names={0: "CT"},
        labels={"background": 0, "liver": 1, "tumour": 2},
        num_classes=3,
        normalization=(
            ChannelNormalization(scheme="ct", clip_low=-200, clip_high=300, mean=60, std=80),
        ),
        configurations={"3d": config},
        default_configuration="3d",
        num_folds=1,
    )


def _interleaved_medians(
    contenders: dict[str, Callable[[], torch.Tensor]], repeats: int
) -> dict[str, tuple[float, torch.Tensor]]:
    """Warm each contender up once, then time them in turns (fair under a shared, noisy CPU)."""
    outputs = {name: fn() for name, fn in contenders.items()}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), outputs[name]) for name in contenders}


def monai_tta(
    net: torch.nn.Module,
    image: torch.Tensor,
    sw_batch_size: int,
    weight_map: torch.Tensor | None = None,
) -> torch.Tensor:
    """MONAI sliding window once per mirror combination, softmax outputs averaged.

    ``weight_map``: passed as ``roi_weight_map`` (medseg's Gaussian) instead of MONAI's own.
    """
    from monai.inferers import sliding_window_inference

    def predictor(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(net(x), 1)

    combos = mirror_combinations(MIRROR)
    total = None
    with torch.inference_mode():
        for combo in combos:
            dims = [a + 2 for a in combo]
            x = torch.flip(image[None], dims) if dims else image[None]
            out = sliding_window_inference(
                x,
                PATCH,
                sw_batch_size,
                predictor,
                overlap=0.5,
                mode="gaussian",
                sigma_scale=0.125,
                roi_weight_map=weight_map,
            )
            out = torch.flip(out, dims) if dims else out
            total = out if total is None else total + out
    return total[0] / len(combos)


def compare_with_monai(repeats: int) -> list[str]:
    from medseg.train.networks import build_network

    torch.manual_seed(0)
    plan = bench_plan((1.0, 1.0, 1.0))
    net = build_network(plan.configuration().network, in_channels=1, out_channels=3, ndim=3)
    net = net.eval()
    rng = np.random.default_rng(0)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    body = (sum(g**2 for g in grid) < 0.8).astype(np.float32)
    image = torch.from_numpy(body * 2 - 1 + rng.normal(0, 0.3, body.shape).astype(np.float32))
    image = image[None]
    batch = 16
    settings = WindowSettings(patch_size=PATCH, mirror_axes=MIRROR, batch_size=batch)
    fields = settings.__dict__
    channels_last = WindowSettings(**{**fields, "channels_last": True})
    weight_map = torch.from_numpy(gaussian_importance_map(PATCH))

    def medseg_run(s: WindowSettings = settings) -> torch.Tensor:
        return sliding_window_predict([net], image, s, num_classes=3).probabilities

    contenders = {
        f"medseg, batch {batch} (4 flips x 4 tiles per forward)": medseg_run,
        "medseg, same + channels_last": lambda: medseg_run(channels_last),
        "MONAI, sw_batch_size 1 (default), MONAI Gaussian": lambda: monai_tta(net, image, 1),
        "MONAI, sw_batch_size 8 (all tiles of a pass), MONAI Gaussian": lambda: monai_tta(
            net, image, 8
        ),
        "MONAI, sw_batch_size 8, medseg's Gaussian as roi_weight_map": lambda: monai_tta(
            net, image, 8, weight_map
        ),
    }
    results = _interleaved_medians(contenders, repeats)
    t_ours, p_ours = next(iter(results.values()))
    labels_ours = p_ours.argmax(0)
    rows = []
    for name, (seconds, probs) in results.items():
        agree = float((probs.argmax(0) == labels_ours).float().mean())
        diff = float((probs - p_ours).abs().max())
        rows.append(
            f"| {name} | {seconds:.2f} s | {seconds / t_ours:.2f} | {100 * agree:.3f} % | "
            f"{diff:.4f} |"
        )
    plain = WindowSettings(patch_size=PATCH, batch_size=batch)
    bf16 = WindowSettings(patch_size=PATCH, batch_size=batch, use_bf16=True)
    timed = _interleaved_medians(
        {"fp32": lambda: medseg_run(plain), "bf16": lambda: medseg_run(bf16)}, 1
    )
    (t32, p32), (t16, p16) = timed["fp32"], timed["bf16"]
    agree = float((p16.argmax(0) == p32.argmax(0)).float().mean())
    rows.append(
        f"| medseg bf16 autocast vs float32, no TTA | {t16:.2f} s vs {t32:.2f} s | "
        f"{t16 / t32:.2f} | {100 * agree:.3f} % | {float((p16 - p32).abs().max()):.4f} |"
    )
    return rows


CHILD = r"""
import json, resource, sys, time
from medseg.infer import Predictor
model, source, out = sys.argv[1:4]
start = time.perf_counter()
report = Predictor(model, device="cpu", fast=True).predict_files(source, out)
assert report.ok, report.failures
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "volumes": report.outputs[0].volumes}))
"""


NNUNET_CHILD = r"""
import json, statistics, sys, time
from types import SimpleNamespace
import numpy as np, torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
cfg = json.loads(sys.argv[1])
image = torch.from_numpy(np.load(sys.argv[2]))
n = len(cfg["filters"])
torch.manual_seed(0)
net = PlainConvUNet(
    input_channels=1, n_stages=n, features_per_stage=cfg["filters"], conv_op=torch.nn.Conv3d,
    kernel_sizes=cfg["kernels"], strides=cfg["strides"], n_conv_per_stage=[2] * n,
    num_classes=cfg["classes"], n_conv_per_stage_decoder=[2] * (n - 1), conv_bias=True,
    norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
    nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=False,
)
predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                            perform_everything_on_device=False, device=torch.device("cpu"),
                            verbose=False, allow_tqdm=False)
predictor.network = net
predictor.configuration_manager = SimpleNamespace(patch_size=list(cfg["patch"]))
predictor.label_manager = SimpleNamespace(num_segmentation_heads=cfg["classes"])
predictor.allowed_mirroring_axes = tuple(cfg["mirror"])
out = predictor.predict_sliding_window_return_logits(image)
times = []
for _ in range(cfg["repeats"]):
    start = time.perf_counter()
    out = predictor.predict_sliding_window_return_logits(image)
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": statistics.median(times), "shape": list(out.shape),
                  "parameters": sum(p.numel() for p in net.parameters())}))
"""


def compare_with_nnunet(venv: Path, repeats: int) -> list[str]:
    """Time nnU-Net's sliding window (its own process) against medseg's on the same input."""
    from medseg.train.networks import build_network

    torch.manual_seed(0)
    plan = bench_plan((1.0, 1.0, 1.0))
    network = plan.configuration().network
    net = build_network(network, in_channels=1, out_channels=3, ndim=3).eval()
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (1, *SHAPE)).astype(np.float32)
    tensor = torch.from_numpy(image)
    settings = WindowSettings(patch_size=PATCH, mirror_axes=MIRROR, batch_size=16)
    single = WindowSettings(patch_size=PATCH, mirror_axes=MIRROR, batch_size=1)
    results = _interleaved_medians(
        {
            "medseg, batch 16": lambda: (
                sliding_window_predict([net], tensor, settings, num_classes=3).probabilities
            ),
            "medseg, batch 1": lambda: (
                sliding_window_predict([net], tensor, single, num_classes=3).probabilities
            ),
        },
        repeats,
    )
    config = {
        "filters": list(network.filters),
        "kernels": [list(k) for k in network.kernel_sizes],
        "strides": [list(s) for s in network.strides],
        "patch": list(PATCH),
        "mirror": list(MIRROR),
        "classes": 3,
        "repeats": repeats,
    }
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "image.npy", image)
        run = subprocess.run(
            [str(venv / "bin" / "python"), "-c", NNUNET_CHILD, json.dumps(config),
             str(Path(tmp) / "image.npy")],
            capture_output=True, text=True, check=False,
            env={**os.environ, "PYTHONWARNINGS": "ignore", "nnUNet_compile": "f"},
        )  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"nnU-Net predictor failed:\n{run.stderr}")
    peer = json.loads(run.stdout.strip().splitlines()[-1])
    t_ours = results["medseg, batch 16"][0]
    params = sum(p.numel() for p in net.parameters())
    rows = [
        f"| {name} ({params} parameters) | {seconds:.2f} s ({seconds / t_ours:.2f}x) |"
        for name, (seconds, _) in results.items()
    ]
    rows.append(
        f"| nnU-Net v2 nnUNetPredictor, PlainConvUNet ({peer['parameters']} parameters) | "
        f"{peer['seconds']:.2f} s ({peer['seconds'] / t_ours:.2f}x) |"
    )
    return rows


def ct_case(tmp: Path) -> str:
    from medseg.io import Image, write_image
    from medseg.train.model_folder import save_fold, save_model_folder
    from medseg.train.networks import build_network

    plan = bench_plan((5.0, 4.0, 4.0))
    model = save_model_folder(tmp / "model", plan, configuration="3d")
    torch.manual_seed(0)
    save_fold(model, 0, build_network(plan.configuration().network, 1, 3, 3))
    shape = (300, 512, 512)
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:300, :512, :512]
    body = ((y - 256) / 200.0) ** 2 + ((x - 256) / 240.0) ** 2 < 1
    organ = ((z - 150) / 80.0) ** 2 + ((y - 230) / 90.0) ** 2 + ((x - 300) / 110.0) ** 2 < 1
    hu = np.where(body, 40, -1000).astype(np.int16) + np.where(organ, 60, 0).astype(np.int16)
    hu += rng.integers(-20, 20, size=shape, dtype=np.int16)
    source = tmp / "ct.nii"
    write_image(Image.from_array(hu[None], spacing=(1.0, 0.78, 0.78)), source)
    del hu, body, organ
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(source), str(tmp / "out")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if run.returncode != 0:
        raise RuntimeError(f"CT prediction failed:\n{run.stderr}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return (
        f"| 512 x 512 x 300 int16 CT, 3 classes, (5, 4, 4) mm plan, no TTA | "
        f"{result['seconds']:.1f} s | peak RSS {result['peak_rss_gib']:.2f} GiB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-ct", action="store_true")
    parser.add_argument("--skip-monai", action="store_true")
    parser.add_argument(
        "--nnunet-venv",
        type=Path,
        default=None,
        help="nnU-Net environment (benchmarks/nnunet_env.sh): also time nnU-Net's predictor",
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    if not args.skip_monai:
        print("| run | median time | time / medseg | label agreement | max prob diff |")
        print("|---|---|---|---|---|")
        for row in compare_with_monai(args.repeats):
            print(row, flush=True)
    if not args.skip_ct:
        with tempfile.TemporaryDirectory() as tmp:
            print(ct_case(Path(tmp)))
    if args.nnunet_venv is not None:
        print("| predictor (same input, patch, step 0.5, Gaussian, 4-flip TTA) | median time |")
        print("|---|---|")
        for row in compare_with_nnunet(args.nnunet_venv, args.repeats):
            print(row, flush=True)


if __name__ == "__main__":
    main()
