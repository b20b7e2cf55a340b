"""Interactive segmentation: accuracy of the shipped universal model, and latency.

Usage::

    python benchmarks/bench_interactive.py [MODEL_DIR] [--peer-brain DIR] [--threads N]
        [--json OUT.json] [--card-doc docs/interactive.md] [--no-accuracy] [--no-latency]

MODEL_DIR defaults to the universal model shipped inside medseg.

**Accuracy** (one run, every engine on the same inputs with the same simulated users): the
model vs the random walker (``classical``) and, when ``--peer-brain`` names a model folder
from ``medseg train-interactive brain_train -o DIR --max-minutes 15`` (brain_train:
``medseg example brain brain_train --cases 8 --seed 0``), that per-dataset engine. Protocols:
``cvpr`` (box, then clicks at the largest error) and ``clicks`` (RITM clicks only), Dice
after 1 and after 5 interactions, on data the universal model never trained on:

* ``brain``: the 3D brain example (``medseg example brain``, 4 cases, seed 1, 2 mm): grey
  matter, white matter and lesions, each class one object;
* ``coins``: scikit-image's ``coins`` photograph, each of its 24 coins one object (labels by
  scikit-image's own watershed recipe on the Sobel map, checked by eye);
* ``ct_phantom``: a simulated CT slice: the Shepp-Logan phantom at 256², forward-projected
  (180 angles), noised and reconstructed by filtered back-projection (streaks and correlated
  noise that the task generator does not imitate); objects are its connected regions of
  constant value, split into ``large`` (>= 1000 px) and ``small``.

The results go to ``--json`` (the model card in docs/interactive.md is rendered from it by
:func:`card_table`).

**Latency** rows (median of repeats after a warm-up):

* 2D 256x256, learned engine: a box, then 5 correction clicks (goal <= 50 ms each).
* 2D 256x256, classical engine (random walker on the region of interest) vs
  ``skimage.segmentation.random_walker`` on the whole image with the same seeds; the masks
  must agree (Dice printed).
* 3D, a sphere of diameter 81 voxels in a 160^3 volume (region of interest about 121^3),
  learned engine: the first box (every boxed slice in one batch), then correction
  clicks (goal <= 500 ms per interaction).
* 3D, classical engine on the same region (block-averaged to at most 48^3) vs scikit-image's
  random walker on the full-resolution region with the same seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skimage.segmentation import random_walker
from threadpoolctl import threadpool_limits

from medseg.interactive.classical import RandomWalkerEngine
from medseg.interactive.engine import UNIVERSAL, default_engine
from medseg.interactive.learned import LearnedEngine
from medseg.interactive.protocol import simulate_case, summarize
from medseg.interactive.session import Session
from medseg.interactive.simulate import error_click
from medseg.io import Image

PROTOCOLS = {"cvpr": 6, "clicks": 5}
STEPS = (1, 5)


def ball(shape: tuple[int, ...], radius: float) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float32)
    centre = [(s - 1) / 2 for s in shape]
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def run_session(engine, image: np.ndarray, ref: np.ndarray, clicks: int) -> list[float]:
    """Seconds per interaction: a tight box, then ``clicks`` CVPR-rule correction clicks."""
    rng = np.random.default_rng(0)
    session = Session(image, engine)
    coords = np.argwhere(ref)
    session.add_box(tuple(coords.min(0)), tuple(coords.max(0)))
    times = []
    start = time.perf_counter()
    mask = session.predict().mask
    times.append(time.perf_counter() - start)
    for _ in range(clicks):
        click = error_click(mask, ref, rng)
        if click is None:
            break
        session.add_click(click.point, positive=click.positive)
        start = time.perf_counter()
        mask = session.predict().mask
        times.append(time.perf_counter() - start)
    return times


def peer_random_walker(image: np.ndarray, ref: np.ndarray) -> tuple[float, np.ndarray]:
    """scikit-image random walker on the whole array, seeds as the classical engine sets them
    for a tight box: background outside the box, object in the central quarter ellipse."""
    coords = np.argwhere(ref)
    lo, hi = coords.min(0), coords.max(0)
    labels = np.full(image.shape, 2, dtype=np.int32)
    labels[tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))] = 0
    grid = np.indices(image.shape, dtype=np.float32)
    centre, semi = (lo + hi) / 2, np.maximum(0.25 * (hi - lo + 1) / 2, 0.5)
    labels[sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, semi, strict=True)) <= 1] = 1
    norm = (image - image.mean()) / image.std()
    start = time.perf_counter()
    prob = random_walker(norm, labels, beta=130, mode="cg_j", tol=1e-3, return_full_prob=True)
    return time.perf_counter() - start, prob[0] >= 0.5


def coins_objects() -> tuple[Image, list[tuple[str, str, np.ndarray]]]:
    """scikit-image's coins and its 24 coins, segmented by scikit-image's watershed recipe."""
    from scipy import ndimage
    from skimage import data
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    coins = data.coins()
    markers = np.zeros_like(coins)
    markers[coins < 30] = 1
    markers[coins > 150] = 2
    filled = ndimage.binary_fill_holes(watershed(sobel(coins), markers) - 1)
    pieces, count = ndimage.label(filled)
    objects = [
        ("coin", f"coin{i:02d}", pieces == i)
        for i in range(1, count + 1)
        if (pieces == i).sum() >= 100
    ]
    return Image.from_array(coins[None].astype(np.float32)), objects


def ct_phantom_objects() -> tuple[Image, list[tuple[str, str, np.ndarray]]]:
    """A filtered back-projection of the noised Shepp-Logan phantom and its regions."""
    from scipy import ndimage
    from skimage import data
    from skimage.transform import iradon, radon, resize

    phantom = resize(
        data.shepp_logan_phantom(), (256, 256), order=0, anti_aliasing=False, preserve_range=True
    )
    levels = np.round(phantom, 3)
    theta = np.linspace(0, 180, 180, endpoint=False)
    sinogram = radon(phantom, theta)
    sinogram += np.random.default_rng(0).normal(0, 0.02 * sinogram.max(), sinogram.shape)
    image = iradon(sinogram, theta, filter_name="ramp").astype(np.float32)
    objects = []
    background = ndimage.label(levels == 0)[0]
    outside = background == background[0, 0]
    for value in np.unique(levels):
        pieces, count = ndimage.label(levels == value)
        for i in range(1, count + 1):
            piece = pieces == i
            if piece.sum() >= 25 and not (piece & outside).any():
                size = "large" if piece.sum() >= 1000 else "small"
                objects.append((size, f"v{value:.2f}_{i}", piece))
    return Image.from_array(image[None]), objects


def brain_objects(cases: int) -> list[tuple[Image, list[tuple[str, str, np.ndarray]]]]:
    """The brain example's evaluation cases (seed 1) and their three classes."""
    from medseg.data import load_dataset
    from medseg.data.example import BRAIN_LABELS, make_brain_example
    from medseg.io import read_channels, read_image

    names = {v: n for n, v in BRAIN_LABELS.foreground.items()}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        root = make_brain_example(Path(tmp) / "brain_eval", cases=cases, seed=1)
        for case in load_dataset(root).labelled:
            image = read_channels(case.image_paths)
            label = read_image(case.label_path).array[0]
            objects = [
                (names[v], case.case_id, label == v) for v in sorted(names) if (label == v).any()
            ]
            out.append((image, objects))
    return out


def evaluate(engine, sets, protocol: str, seed: int = 0) -> dict[str, Any]:
    """Per-class summary of one engine on (image, objects) sets with one simulated user."""
    rng = np.random.default_rng(seed)
    rows = []
    for image, objects in sets:
        for label, case_id, ref in objects:
            for row in simulate_case(
                engine, image, ref, protocol=protocol, n_interactions=PROTOCOLS[protocol], rng=rng
            ):
                rows.append({"case_id": case_id, "label": label, **row})
    summary = summarize(rows, protocol=protocol, n_interactions=PROTOCOLS[protocol])
    return {
        label: {
            "n_objects": c["n_objects"],
            "dice": {str(k): round(c["dice_per_step"][k - 1], 4) for k in STEPS},
            "nsd": {str(k): round(c["nsd_per_step"][k - 1], 4) for k in STEPS},
            "seconds": round(c["mean_seconds"], 4),
        }
        for label, c in summary["classes"].items()
    }


def accuracy(engines: dict[str, Any], brain_cases: int) -> dict[str, Any]:
    """Every engine, dataset and protocol; the per-dataset peer only where it exists."""
    datasets = {
        "brain": brain_objects(brain_cases),
        "coins": [coins_objects()],
        "ct_phantom": [ct_phantom_objects()],
    }
    results: dict[str, Any] = {}
    for dataset, sets in datasets.items():
        for protocol in PROTOCOLS:
            for name, engine in engines.items():
                if name == "train-interactive 15 min" and dataset != "brain":
                    continue
                start = time.perf_counter()
                scores = evaluate(engine, sets, protocol)
                results.setdefault(dataset, {}).setdefault(protocol, {})[name] = scores
                for label, score in scores.items():
                    print(
                        f"{dataset:10s} {protocol:6s} {label:12s} {name:26s} Dice after "
                        f"1 / 5: {score['dice']['1']:.3f} / {score['dice']['5']:.3f} "
                        f"({score['n_objects']} objects, {score['seconds']:.2f} s/step)"
                    )
                print(f"  ({time.perf_counter() - start:.0f} s)")
    return results


#: Goals of the universal model: brain example, CVPR protocol, Dice after 5 interactions.
DICE_GOALS = {"grey_matter": 0.85, "white_matter": 0.85, "lesion": 0.60}
#: Latency goals on 2 CPU cores, milliseconds per interaction.
LATENCY_GOALS = {"2d_learned_ms": 50, "3d_first_box_ms": 500, "3d_correction_ms": 150}


def card_table(results: dict[str, Any]) -> str:
    """Markdown for the model card, all from the benchmark's output: Dice after 1 / 5
    interactions per dataset, protocol, class and engine; the goals; latency; the run."""
    lines = [
        "| data | protocol | class (objects) | engine | Dice after 1 | Dice after 5 |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, protocols in results["accuracy"].items():
        for protocol, engines in protocols.items():
            labels = list(next(iter(engines.values())))
            for label in labels:
                for name, scores in engines.items():
                    s = scores[label]
                    lines.append(
                        f"| {dataset} | {protocol} | {label} ({s['n_objects']}) | {name} | "
                        f"{s['dice']['1']:.3f} | {s['dice']['5']:.3f} |"
                    )
    brain = results["accuracy"].get("brain", {}).get("cvpr", {}).get(results["model"])
    goals = ["| goal | measured | met |", "|---|---|---|"]
    for label, goal in DICE_GOALS.items():
        if brain and label in brain:
            got = brain[label]["dice"]["5"]
            goals.append(
                f"| brain, CVPR, {label} Dice after 5 >= {goal:.2f} | {got:.3f} | "
                f"{'yes' if got >= goal else 'no'} |"
            )
    for dataset, protocols in results["accuracy"].items():
        for protocol, engines in protocols.items():
            ours = engines.get(results["model"])
            others = [e for name, e in engines.items() if name != results["model"]]
            if ours is None or not others:
                continue
            wins = [
                label
                for label in ours
                if all(
                    ours[label]["dice"][k] > other[label]["dice"][k]
                    for other in others
                    for k in ours[label]["dice"]
                )
            ]
            goals.append(
                f"| {dataset}, {protocol}: beats every other engine after 1 and after 5, "
                f"every class | {len(wins)} of {len(ours)} classes | "
                f"{'yes' if len(wins) == len(ours) else 'no'} |"
            )
    for key, goal in LATENCY_GOALS.items():
        got = results.get("latency", {}).get(key)
        if got is not None:
            name = key.removesuffix("_ms").replace("_", " ")
            goals.append(
                f"| {name} <= {goal} ms | {got:.0f} ms | {'yes' if got <= goal else 'no'} |"
            )
    if len(goals) > 2:
        lines += ["", *goals]
    notes = [
        f"Run {results['date']} on {results['machine']}, {results['threads']} thread(s), load "
        f"average {results['load_average_start']} at the start and "
        f"{results.get('load_average_end', '?')} at the end; model trained "
        f"{results['training']} iterations ({results['training_hours']} h)."
    ]
    if results.get("peer_brain_iterations") is not None:
        notes.append(
            f"The train-interactive peer trained {results['peer_brain_iterations']} iterations "
            f"in {results['peer_brain_seconds'] / 60:.1f} min of wall time."
        )
    return "\n".join([*lines, "", " ".join(notes)])


def latency(learned, repeats: int) -> dict[str, Any]:
    """Seconds per interaction (see the module docstring); prints one line per row."""
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    disk = ball((256, 256), 50)
    image2d = disk + rng.normal(0, 0.2, disk.shape)
    learned_2d = [t for _ in range(repeats) for t in run_session(learned, image2d, disk, 5)]
    out["2d_learned_ms"] = round(1e3 * statistics.median(learned_2d), 1)
    print(
        f"2D 256^2 learned   | median {1e3 * statistics.median(learned_2d):6.1f} ms / "
        f"interaction | max {1e3 * max(learned_2d):6.1f} ms | goal 50 ms"
    )
    classical_2d = [run_session(RandomWalkerEngine(), image2d, disk, 0)[0] for _ in range(repeats)]
    peer_t, peer_mask = peer_random_walker(image2d, disk)
    session = Session(image2d, RandomWalkerEngine())
    coords = np.argwhere(disk)
    session.add_box(tuple(coords.min(0)), tuple(coords.max(0)))
    agree = dice(session.predict().mask, peer_mask)
    out["2d_classical_ms"] = round(1e3 * statistics.median(classical_2d), 1)
    print(
        f"2D 256^2 classical | medseg {1e3 * statistics.median(classical_2d):6.1f} ms | "
        f"skimage full image {1e3 * peer_t:6.1f} ms | "
        f"{peer_t / statistics.median(classical_2d):.1f}x | Dice agreement {agree:.3f}"
    )

    sphere = ball((160, 160, 160), 40.5)
    image3d = (sphere + rng.normal(0, 0.2, sphere.shape)).astype(np.float32)
    firsts, corrections = [], []
    for _ in range(repeats):
        times = run_session(learned, image3d, sphere, 3)
        firsts.append(times[0])
        corrections.extend(times[1:])
    session = Session(image3d, learned)
    session.add_box(tuple(np.argwhere(sphere).min(0)), tuple(np.argwhere(sphere).max(0)))
    roi = session.predict().roi
    roi_shape = tuple(s.stop - s.start for s in roi)
    out["3d_first_box_ms"] = round(1e3 * statistics.median(firsts), 1)
    out["3d_correction_ms"] = (
        round(1e3 * statistics.median(corrections), 1) if corrections else None
    )
    print(
        f"3D {roi_shape} ROI learned | first box {out['3d_first_box_ms']:7.1f} ms | "
        f"correction click {out['3d_correction_ms']} ms | goals 500 / 150 ms"
    )
    classical_3d = [
        run_session(RandomWalkerEngine(), image3d, sphere, 0)[0] for _ in range(repeats)
    ]
    peer_t, peer_mask = peer_random_walker(image3d[roi], sphere[roi])
    session = Session(image3d, RandomWalkerEngine())
    session.add_box(tuple(np.argwhere(sphere).min(0)), tuple(np.argwhere(sphere).max(0)))
    agree = dice(session.predict().mask[roi], peer_mask)
    out["3d_classical_ms"] = round(1e3 * statistics.median(classical_3d), 1)
    print(
        f"3D {roi_shape} ROI classical | medseg {1e3 * statistics.median(classical_3d):7.1f} "
        f"ms | skimage full-res ROI {1e3 * peer_t:7.1f} ms | "
        f"{peer_t / statistics.median(classical_3d):.1f}x | Dice agreement {agree:.3f}"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", type=Path, help="default: the shipped model")
    parser.add_argument("--peer-brain", type=Path, help="train-interactive model of brain_train")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--brain-cases", type=int, default=4)
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--card-doc", type=Path, help="rewrite the card table in this doc")
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    threadpool_limits(limits=args.threads)  # BLAS too: the random walker's solver uses it
    learned = LearnedEngine.load(args.model) if args.model else default_engine()
    label = str(args.model) if args.model else UNIVERSAL
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "machine": f"{cpu}, {os.cpu_count()} CPUs",
        "load_average_start": round(os.getloadavg()[0], 1),
        "threads": args.threads,
        "model": label,
        "training": learned.config.training.get("iterations"),
        "training_hours": learned.config.training.get("hours"),
    }
    print(
        f"machine: {results['machine']}, load average {results['load_average_start']}, "
        f"torch and BLAS threads {args.threads}, model {label}"
    )
    if not args.no_accuracy:
        engines: dict[str, Any] = {label: learned, "random walker": RandomWalkerEngine()}
        if args.peer_brain:
            peer = LearnedEngine.load(args.peer_brain)
            engines["train-interactive 15 min"] = peer
            results["peer_brain_iterations"] = peer.config.training.get("iterations")
            results["peer_brain_seconds"] = peer.config.training.get("seconds")
        results["accuracy"] = accuracy(engines, args.brain_cases)
        print(card_table(results))
    if not args.no_latency:
        results["latency"] = latency(learned, args.repeats)
    results["load_average_end"] = round(os.getloadavg()[0], 1)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.card_doc and "accuracy" in results:
        write_card(args.card_doc, card_table(results))


def write_card(doc: Path, table: str) -> None:
    """Replace the lines between the card-table markers of ``doc`` by ``table``."""
    text = doc.read_text()
    start = text.index("\n", text.index("<!-- card-table")) + 1
    end = text.index("<!-- /card-table -->")
    doc.write_text(text[:start] + table + "\n" + text[end:])


if __name__ == "__main__":
    main()
