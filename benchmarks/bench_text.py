"""Time to answer a text query on a 256³ label map with 50 lesions, once the lesion table exists.

The case: a 256 x 256 x 256 label map (spacing 1.5 x 1 x 1 mm, stored with x flipped so that
left/right must come from the direction matrix), four organs (liver, spleen, two kidneys) and
50 spherical lesions of distinct radii, most inside the organs. medseg builds the scene once
(:func:`medseg.text.build_scene`: the report's lesion table), then answers each phrase with
:func:`medseg.text.find` (parse + resolve + full-size mask). The first call of a phrase also
fills the scene's caches (structure surfaces for "near"); the median of the repeats is the
steady state. The peer answers two of the phrases from the label map alone with SciPy (26-
connected ``ndimage.label``, voxel counts, side from physical x of each voxel), as a script
without a lesion table would; its masks are checked to equal medseg's.

Run: ``python benchmarks/bench_text.py [--size 256] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy import ndimage

from benchtools import median_seconds, print_row
from medseg.io import Image
from medseg.text import build_scene, find

SPACING = (1.5, 1.0, 1.0)
NAMES = {1: "liver", 2: "spleen", 3: "kidney_left", 4: "kidney_right", 5: "lesion"}
PHRASES = (
    "the largest lesion in the left hemisphere",
    "lesions over 2 ml in the liver",
    "the three smallest lesions on the right",
    "lesions within 10 mm of the spleen",
    "the most anterior lesion",
    "lesion 7",
    "the left kidney",
    "the largset lesoin in the lver",
)


def make_case(size: int, lesions: int = 50, seed: int = 0) -> Image:
    """(1, Z, Y, X) uint8 labels: four box organs, ``lesions`` spheres of distinct radii."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size, size), np.uint8)
    s = size / 256
    organs = {
        1: (
            slice(int(60 * s), int(200 * s)),
            slice(int(30 * s), int(150 * s)),
            slice(int(10 * s), int(120 * s)),
        ),
        2: (
            slice(int(90 * s), int(170 * s)),
            slice(int(80 * s), int(170 * s)),
            slice(int(150 * s), int(230 * s)),
        ),
        3: (
            slice(int(40 * s), int(100 * s)),
            slice(int(180 * s), int(240 * s)),
            slice(int(150 * s), int(200 * s)),
        ),
        4: (
            slice(int(40 * s), int(100 * s)),
            slice(int(180 * s), int(240 * s)),
            slice(int(50 * s), int(100 * s)),
        ),
    }
    for value, box in organs.items():
        labels[box] = value
    radii = np.linspace(2.0, 9.0, lesions) * s
    zz, yy, xx = np.ogrid[:size, :size, :size]
    placed = 0
    while placed < lesions:
        r = radii[placed]
        centre = rng.uniform(r + 2, size - r - 2, 3)
        box = tuple(slice(max(int(c - r - 1), 0), int(c + r + 2)) for c in centre)
        inside = (zz[box[0]] - centre[0]) ** 2 + (yy[:, box[1]] - centre[1]) ** 2 + (
            xx[:, :, box[2]] - centre[2]
        ) ** 2 <= r**2
        grown = tuple(slice(max(b.start - 2, 0), b.stop + 2) for b in box)
        if (labels[grown] == 5).any():
            continue
        labels[box][inside] = 5
        placed += 1
    direction = np.diag([1.0, 1.0, -1.0])  # x stored flipped (patient right to left reversed)
    origin = (0.0, 0.0, (size - 1) * SPACING[2])
    return Image(labels[:, :, ::-1].copy()[None], SPACING, origin, direction)


def peer_largest_left(seg: Image) -> np.ndarray:
    """SciPy only: the largest 26-connected lesion with >= 80 % of its voxels left of midline."""
    labels = seg.array[0]
    components, n = ndimage.label(labels == 5, structure=np.ones((3, 3, 3), bool))
    x_index = np.arange(labels.shape[2], dtype=np.float64)
    x_mm = seg.origin[2] + seg.direction[2, 2] * seg.spacing[2] * x_index
    midline = seg.origin[2] + seg.direction[2, 2] * seg.spacing[2] * (labels.shape[2] - 1) / 2
    left_voxel = np.broadcast_to(x_mm > midline, labels.shape)
    counts = np.bincount(components.ravel(), minlength=n + 1)
    left = np.bincount(components.ravel(), weights=left_voxel.ravel(), minlength=n + 1)
    fraction = left[1:] / counts[1:]
    candidates = np.flatnonzero(fraction >= 0.8) + 1
    best = candidates[np.argmax(counts[candidates])]
    return components == best


def peer_three_smallest_right(seg: Image) -> np.ndarray:
    """SciPy only: the three smallest lesions with >= 80 % of their voxels right of midline."""
    labels = seg.array[0]
    components, n = ndimage.label(labels == 5, structure=np.ones((3, 3, 3), bool))
    x_index = np.arange(labels.shape[2], dtype=np.float64)
    x_mm = seg.origin[2] + seg.direction[2, 2] * seg.spacing[2] * x_index
    midline = seg.origin[2] + seg.direction[2, 2] * seg.spacing[2] * (labels.shape[2] - 1) / 2
    right_voxel = np.broadcast_to(x_mm <= midline, labels.shape)
    counts = np.bincount(components.ravel(), minlength=n + 1)
    right = np.bincount(components.ravel(), weights=right_voxel.ravel(), minlength=n + 1)
    candidates = np.flatnonzero(right[1:] / counts[1:] >= 0.8) + 1
    chosen = candidates[np.argsort(counts[candidates], kind="stable")[:3]]
    return np.isin(components, chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        model = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), "?")
    print(f"model: {model}; load average: {os.getloadavg()}")
    seg = make_case(args.size)
    start, cpu = time.perf_counter(), time.process_time()
    scene = build_scene(seg, names=NAMES)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"scene ({len(scene.table)} lesions): wall {wall:.2f} s, process CPU {cpu:.2f} s")
    print(f"{'phrase':<44} | first call | median of {args.repeats} (wall) | process CPU")
    for phrase in PHRASES:
        start = time.perf_counter()
        selection = find(scene, phrase)
        first = time.perf_counter() - start
        wall = median_seconds(lambda p=phrase: find(scene, p), args.repeats)
        cpu = time.process_time()
        for _ in range(args.repeats):
            find(scene, phrase)
        cpu_each = (time.process_time() - cpu) / args.repeats
        print(
            f"{phrase:<44} | {first * 1000:7.1f} ms | {wall * 1000:7.1f} ms | "
            f"{cpu_each * 1000:6.1f} ms | {int(selection.mask.sum())} voxels"
        )
    peers = {
        "the largest lesion in the left hemisphere": peer_largest_left,
        "the three smallest lesions on the right": peer_three_smallest_right,
    }
    for phrase, peer in peers.items():
        ours = find(scene, phrase).mask
        assert np.array_equal(ours, peer(seg)), f"medseg and the SciPy peer disagree on {phrase!r}"
        print_row(
            phrase[:40],
            median_seconds(lambda p=phrase: find(scene, p), args.repeats),
            "scipy",
            median_seconds(lambda f=peer: f(seg), max(args.repeats // 2, 1)),
            "masks agree",
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
