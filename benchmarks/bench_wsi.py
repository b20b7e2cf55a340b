"""Whole-slide prediction: medseg (tissue-only, coarse-to-fine) vs a naive tile loop.

Builds a synthetic pyramidal TIFF (default 60 000 x 60 000 px at 0.5 µm/px, JPEG tiles, written
tile by tile; kept for later runs), then runs, each in its own process so peak memory is its
own:

- **medseg**: tissue mask at 8 µm/px, coarse pass at 1/8 resolution, full-resolution refinement
  of the tiles that hold the target or are uncertain, Gaussian blending, streamed pyramidal TIFF;
- **naive**: the same tile loop and model over every tile at full resolution (no tissue mask,
  no coarse pass).

Both use the same tile model: a classical "dense dark nuclei" detector (smoothed darkness
through a logistic), so the comparison measures the tiling, not a network. The outputs are then
compared on tissue (ground truth of the synthetic slide) band by band: agreement, and Dice of
each against the true tumour regions.

With ``--robustness`` it scores the same two methods on H&E-like renderings of 20 synthetic
nuclei images, clean and under noise, blur, JPEG, contrast and stain shift at three strengths
each (``medseg.wsi.robustness``), and prints each metric's drop; the learned head comes from an
earlier ``--nuclei`` run in the same ``--workdir`` (else it is trained first).

With ``--nuclei`` it instead trains the learned nuclei head (foreground + StarDist object
probability, marker watershed) on synthetic microscopy for ``--train-seconds`` (one torch
thread), then scores it and the classical watershed baseline on the same 20 held-out synthetic
images (F1 at IoU > 0.5, PQ, AJI), and writes one example's instances as PNG and GeoJSON.

Usage: ``python benchmarks/bench_wsi.py [--size 60000] [--slide /tmp/slide60k.tif]`` or
``python benchmarks/bench_wsi.py --nuclei [--train-seconds 180]`` or
``python benchmarks/bench_wsi.py --robustness``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from benchtools import cpu_model

TILE = 256
HALO = 32


def dark_model(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) uint8 -> (2, H, W): p(tumour) from locally averaged darkness."""
    darkness = 1.0 - rgb.astype(np.float32).mean(axis=0) / 255.0
    smooth = ndimage.gaussian_filter(darkness, 10.0)
    p = 1.0 / (1.0 + np.exp(-(smooth - 0.34) * 40.0))
    return np.stack([1.0 - p, p])


def run_phase(phase: str, slide_path: Path, output: Path) -> None:
    """One prediction in this process; prints a JSON line with the report and peak RSS."""
    from medseg.wsi import Slide, TiledSettings, predict_slide, tissue_mask

    started = time.perf_counter()
    with Slide(slide_path) as slide:
        if phase == "medseg":
            mask = tissue_mask(slide)
            settings = TiledSettings(tile=TILE, halo=HALO, coarse_downsample=8.0)
        else:
            mask = None
            settings = TiledSettings(
                tile=TILE, halo=HALO, tissue_only=False, coarse_downsample=None
            )
        report = predict_slide(slide, dark_model, output, tissue=mask, settings=settings)
    summary = report.summary()
    summary["seconds_with_mask"] = round(time.perf_counter() - started, 2)
    summary["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    print("RESULT " + json.dumps(summary))


def compare(slide_path: Path, fast: Path, naive: Path, size: int) -> dict[str, float]:
    """Agreement on tissue and Dice vs the true tumour, band by band at level 0."""
    from medseg.wsi import Slide
    from medseg.wsi.synthetic import TRUTH_LABELS, SyntheticSlide, SyntheticSlideSpec

    truth_source = SyntheticSlide(SyntheticSlideSpec(shape=(size, size), tile=512, seed=0))
    counts = dict.fromkeys(
        ("tissue", "agree", "fast_tp", "fast_n", "naive_tp", "naive_n", "true"), 0
    )
    band = 1024
    step = 4  # truth at every 4th pixel of every 4th row (its renderer is slow at full size)
    with Slide(fast) as a, Slide(naive) as b:
        for y in range(0, size, band):
            h = min(band, size - y)
            pa = a.read_region(0, (y, 0), (h, size))[0, ::step, ::step]
            pb = b.read_region(0, (y, 0), (h, size))[0, ::step, ::step]
            truth = truth_source.truth(float(step), (y // step, 0), pa.shape)
            tissue = np.isin(truth, [TRUTH_LABELS["tissue"], TRUTH_LABELS["tumour"]])
            tumour = truth == TRUTH_LABELS["tumour"]
            counts["tissue"] += int(tissue.sum())
            counts["agree"] += int((pa == pb)[tissue].sum())
            counts["true"] += int(tumour.sum())
            for name, pred in (("fast", pa), ("naive", pb)):
                on_tissue = (pred == 1) & tissue
                counts[f"{name}_tp"] += int((on_tissue & tumour).sum())
                counts[f"{name}_n"] += int(on_tissue.sum())
    return {
        "agreement_on_tissue": counts["agree"] / max(counts["tissue"], 1),
        "dice_fast": 2 * counts["fast_tp"] / max(counts["fast_n"] + counts["true"], 1),
        "dice_naive": 2 * counts["naive_tp"] / max(counts["naive_n"] + counts["true"], 1),
        "tissue_fraction": counts["tissue"] / (size // step) ** 2,
    }


def describe_output(path: Path) -> dict[str, object]:
    """Levels and mpp of a written label pyramid, as a reader of the file sees them."""
    from medseg.wsi import Slide

    with Slide(path) as written:
        return {
            "levels": [list(level.shape) for level in written.levels],
            "mpp": list(written.mpp),
            "mib_on_disk": round(path.stat().st_size / 2**20, 1),
        }


def _child(phase: str, slide: Path, output: Path) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--phase", phase, "--slide", str(slide), "--out", str(output)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def nuclei_benchmark(workdir: Path, train_seconds: float) -> None:
    """Learned head vs watershed baseline on the same held-out synthetic nuclei."""
    import torch
    from PIL import Image as PILImage

    from medseg.evaluate.instances import instance_metrics
    from medseg.wsi.geojson import instances_to_geojson, write_geojson
    from medseg.wsi.nuclei import NucleiSpec, synthetic_nuclei, watershed_nuclei
    from medseg.wsi.nuclei_net import NucleiHead, NucleiHeadConfig, train_nuclei_head

    torch.set_num_threads(1)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()} (before)")
    config = NucleiHeadConfig(seconds=train_seconds, batch_size=4)
    summary = train_nuclei_head(workdir / "nuclei_head", config)
    print(f"trained: {summary}")
    head = NucleiHead(workdir / "nuclei_head")
    rng = np.random.default_rng(123)
    scores: dict[str, list] = {"watershed": [], "learned": []}
    seconds = dict.fromkeys(scores, 0.0)
    for index in range(20):
        image, truth = synthetic_nuclei(NucleiSpec(), rng)
        for name, method in (("watershed", watershed_nuclei), ("learned", head.predict)):
            started = time.perf_counter()
            pred = method(image)
            seconds[name] += time.perf_counter() - started
            scores[name].append(instance_metrics(pred, truth))
            if index == 0:
                PILImage.fromarray(pred.astype(np.uint16)).save(workdir / f"nuclei_{name}.png")
                write_geojson(instances_to_geojson(pred, classification="Nucleus"),
                              workdir / f"nuclei_{name}.geojson")  # fmt: skip
    for name, rows in scores.items():
        mean = {k: float(np.mean([getattr(r, k) for r in rows])) for k in ("f1", "pq", "aji")}
        print(
            f"nuclei 20 x 128² synthetic | {name:9} | F1@0.5 {mean['f1']:.3f} | PQ "
            f"{mean['pq']:.3f} | AJI {mean['aji']:.3f} | {1000 * seconds[name] / 20:.0f} ms/image"
        )
    print(f"load after: {os.getloadavg()}")


def robustness_benchmark(workdir: Path, train_seconds: float, count: int = 20) -> None:
    """Watershed baseline and learned head under corruptions: each metric's drop."""
    import torch

    from medseg.wsi.nuclei import NucleiSpec, nuclear_channel, synthetic_nuclei, watershed_nuclei
    from medseg.wsi.nuclei_net import NucleiHead, NucleiHeadConfig, train_nuclei_head
    from medseg.wsi.robustness import brightfield_from_fluorescence, robustness_report

    torch.set_num_threads(1)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()} (before)")
    if not (workdir / "nuclei_head").is_dir():
        config = NucleiHeadConfig(seconds=train_seconds, batch_size=4)
        print(f"trained: {train_nuclei_head(workdir / 'nuclei_head', config)}")
    head = NucleiHead(workdir / "nuclei_head")
    rng = np.random.default_rng(321)
    cases = []
    for _ in range(count):
        image, truth = synthetic_nuclei(NucleiSpec(), rng)
        cases.append((brightfield_from_fluorescence(image, rng), truth))
    methods = {
        "watershed": watershed_nuclei,
        "learned": lambda rgb: head.predict(nuclear_channel(rgb)[None]),
    }
    started = time.perf_counter()
    rows = robustness_report(methods, cases, seed=0)
    print(f"{count} H&E-like 128² images, {time.perf_counter() - started:.0f} s")
    print("| method | corruption | strength | F1@0.5 | PQ | AJI | F1 drop | PQ drop | AJI drop |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.method} | {row.kind} | {row.strength:g} | {row.f1:.3f} | {row.pq:.3f} | "
            f"{row.aji:.3f} | {row.drop_f1:+.3f} | {row.drop_pq:+.3f} | {row.drop_aji:+.3f} |"
        )
    print(f"load after: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=60_000)
    parser.add_argument("--slide", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medseg-bench-wsi"))
    parser.add_argument("--phase", choices=("medseg", "naive"), default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--nuclei", action="store_true", help="Run the nuclei benchmark.")
    parser.add_argument("--robustness", action="store_true", help="Nuclei under corruptions.")
    parser.add_argument("--train-seconds", type=float, default=180.0)
    parser.add_argument(
        "--skip-naive", action="store_true", help="Only medseg (peak memory at full size)."
    )
    args = parser.parse_args()
    if args.nuclei or args.robustness:
        args.workdir.mkdir(parents=True, exist_ok=True)
        if args.nuclei:
            nuclei_benchmark(args.workdir, args.train_seconds)
        if args.robustness:
            robustness_benchmark(args.workdir, args.train_seconds)
        return
    if args.phase is not None:
        run_phase(args.phase, args.slide, args.out)
        return
    from medseg.wsi.synthetic import SyntheticSlideSpec, write_synthetic_slide

    args.workdir.mkdir(parents=True, exist_ok=True)
    slide = args.slide or args.workdir / f"slide{args.size}.tif"
    if not slide.exists():
        started = time.perf_counter()
        spec = SyntheticSlideSpec(shape=(args.size, args.size), tile=512, seed=0)
        write_synthetic_slide(slide, spec)
        print(f"wrote {slide} in {time.perf_counter() - started:.0f} s")
    print(f"slide {args.size} x {args.size} px, {slide.stat().st_size / 2**20:.0f} MiB on disk")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()} (before)")
    results = {}
    for phase in ("medseg",) if args.skip_naive else ("medseg", "naive"):
        results[phase] = _child(phase, slide, args.workdir / f"{phase}.tif")
        print(phase, json.dumps(results[phase]))
    print("output", json.dumps(describe_output(args.workdir / "medseg.tif")))
    if args.skip_naive:
        print(f"load after: {os.getloadavg()}")
        return
    check = compare(slide, args.workdir / "medseg.tif", args.workdir / "naive.tif", args.size)
    print("check", json.dumps(check))
    ours, peer = results["medseg"], results["naive"]
    ratio = float(peer["seconds_with_mask"]) / float(ours["seconds_with_mask"])
    print(
        f"WSI {args.size}² predict | medseg {ours['seconds_with_mask']} s "
        f"({ours['tiles_per_second']} tiles/s, peak {ours['peak_rss_gib']} GiB) | naive loop "
        f"{peer['seconds_with_mask']} s ({peer['tiles_per_second']} tiles/s, peak "
        f"{peer['peak_rss_gib']} GiB) | {ratio:.2f}x | agreement on tissue "
        f"{check['agreement_on_tissue']:.4f}, tumour Dice {check['dice_fast']:.3f} vs "
        f"{check['dice_naive']:.3f}"
    )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
