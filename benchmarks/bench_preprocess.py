"""medseg resampling against nnU-Net's scikit-image implementation on the same arrays.

Plain script: ``python benchmarks/bench_preprocess.py [--repeats 3]``. Each row checks that
medseg and the peer agree, then prints the median of the repeats (after one warm-up) and the
ratio. Rows:

- image, order 3: medseg (SciPy ``zoom``, float32) vs ``skimage.transform.resize`` (nnU-Net) and
  PyTorch trilinear (order 1 only: PyTorch has no tricubic mode);
- label map, one-hot linear >= 0.5: medseg (PyTorch per label) vs scikit-image per label (nnU-Net);
- export, class probabilities back to the cropped grid + argmax: medseg's slab-wise
  ``restore_to_original`` vs scikit-image per class then argmax (nnU-Net) and one full PyTorch
  ``F.interpolate`` then argmax.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch
import torch.nn.functional as F
from skimage.transform import resize

from benchtools import median_seconds, print_row
from medseg.preprocess import CaseProperties, resample_image, resample_label, restore_to_original


def _phantom(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grid))
    label = np.zeros(shape, np.uint8)
    label[r < 0.9] = 2
    label[r < 0.5] = 1
    label[(r < 0.2) & (grid[0] > 0)] = 3
    rng = np.random.default_rng(0)
    image = (label * 30 + rng.normal(0, 5, shape)).astype(np.float32)
    return image, label


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--large", action="store_true", help="add the CT-sized export row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, torch threads {args.threads}, "
        f"torch {torch.__version__}, numpy {np.__version__}"
    )
    shape, new = (64, 96, 96), (96, 144, 144)  # 1.5x per axis, ~2 M output voxels
    image, label = _phantom(shape)

    ours_out = resample_image(image[None], new)[0]
    ref = resize(image, new, order=3, mode="edge", anti_aliasing=False).astype(np.float32)
    t_ours = median_seconds(lambda: resample_image(image[None], new), args.repeats)
    t_sk = median_seconds(
        lambda: resize(image, new, order=3, mode="edge", anti_aliasing=False), args.repeats
    )
    diff = float(np.abs(ours_out - ref).max())
    print_row(f"image order 3 {shape}->{new}", t_ours, "skimage", t_sk, f"max diff {diff:.2g}")
    tensor = torch.from_numpy(image)[None, None]
    t_torch = median_seconds(
        lambda: F.interpolate(tensor, size=new, mode="trilinear", align_corners=False),
        args.repeats,
    )
    print_row("  (order 1 for scale: torch trilinear)", t_ours, "torch", t_torch, "order 1 vs 3")

    def sk_label() -> np.ndarray:
        out = np.zeros(new, np.uint8)
        for value in (1, 2, 3):
            mask = resize(
                (label == value).astype(float), new, order=1, mode="edge", anti_aliasing=False
            )
            out[mask >= 0.5] = value
        return out

    agree = float(np.mean(resample_label(label, new) == sk_label()))
    t_ours = median_seconds(lambda: resample_label(label, new), args.repeats)
    t_sk = median_seconds(sk_label, args.repeats)
    print_row("label one-hot linear, 4 classes", t_ours, "skimage", t_sk, f"agree {agree:.5f}")

    probs = torch.softmax(torch.randn(4, *shape, generator=torch.Generator().manual_seed(0)), 0)
    props = CaseProperties(
        spatial_shape=new,
        spacing=(1.0, 1.0, 1.0),
        origin=(0.0, 0.0, 0.0),
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        bbox=tuple((0, n) for n in new),
        shape_after_crop=new,
        shape_after_resampling=shape,
        spacing_after_resampling=(1.5, 1.5, 1.5),
    )
    probs_np = probs.numpy()

    def sk_export() -> np.ndarray:
        return np.argmax(
            np.stack([resize(p, new, order=1, mode="edge", anti_aliasing=False) for p in probs_np]),
            axis=0,
        ).astype(np.uint8)

    def torch_export() -> np.ndarray:
        full = F.interpolate(probs[None], size=new, mode="trilinear", align_corners=False)[0]
        return full.argmax(0).to(torch.uint8).numpy()

    ours_labels = restore_to_original(probs, props).array[0]
    agree_sk = float(np.mean(ours_labels == sk_export()))
    agree_torch = float(np.mean(ours_labels == torch_export()))
    t_ours = median_seconds(lambda: restore_to_original(probs, props), args.repeats)
    t_sk = median_seconds(sk_export, args.repeats)
    t_torch = median_seconds(torch_export, args.repeats)
    print_row("export 4 classes -> labels", t_ours, "skimage", t_sk, f"agree {agree_sk:.5f}")
    print_row(
        "export 4 classes -> labels", t_ours, "torch full", t_torch, f"agree {agree_torch:.5f}"
    )
    voxels = int(np.prod(new))
    print(
        f"full-resolution float held: medseg {4 * 4 * voxels / new[0] * 8 / 2**20:.1f} MiB "
        f"per slab step (8 slices, 4 classes, float32), full interpolation "
        f"{4 * 4 * voxels / 2**20:.0f} MiB (float32), skimage {4 * 8 * voxels / 2**20:.0f} MiB "
        "(float64)"
    )
    if args.large:
        large_export(args.threads)


LARGE = """
import resource, time, sys, torch
torch.set_num_threads({threads})
import torch.nn.functional as F
from medseg.preprocess import CaseProperties, restore_to_original
new = (300, 512, 512)
probs = torch.rand(3, 150, 256, 256, generator=torch.Generator().manual_seed(0)).half()
props = CaseProperties(spatial_shape=new, spacing=(1.0, 0.8, 0.8), origin=(0.0, 0.0, 0.0),
    direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), bbox=tuple((0, n) for n in new),
    shape_after_crop=new, shape_after_resampling=(150, 256, 256),
    spacing_after_resampling=(2.0, 1.6, 1.6))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if sys.argv[1] == "medseg":
    labels = restore_to_original(probs, props).array
else:
    full = F.interpolate(probs.float()[None], size=new, mode="trilinear", align_corners=False)[0]
    labels = full.argmax(0).to(torch.uint8)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{{seconds:.2f}} {{(peak - base) / 2**20:.2f}}")
"""


def large_export(threads: int) -> None:
    """CT-sized export in fresh processes: 3 classes (150, 256, 256) -> (300, 512, 512)."""
    import subprocess
    import sys

    results = {}
    for name in ("medseg", "torch"):
        out = subprocess.run(
            [sys.executable, "-c", LARGE.format(threads=threads), name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        results[name] = (float(out[0]), float(out[1]))
    (t_ours, m_ours), (t_torch, m_torch) = results["medseg"], results["torch"]
    print(
        f"{'export 3 classes -> 512x512x300 labels':<40} | medseg {t_ours:7.3f} s, "
        f"+{m_ours:.2f} GiB peak | torch full {t_torch:7.3f} s, +{m_torch:.2f} GiB peak | "
        f"{t_torch / t_ours:5.2f}x"
    )


if __name__ == "__main__":
    main()
