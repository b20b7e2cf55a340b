"""Training from imperfect labels on the built-in brain example: each variant vs full labels.

Plain script: ``python benchmarks/bench_weak.py [--seconds 120 | --iterations 300] [--work DIR]
[--variants ...] [--labels-only]`` (``--labels-only``: derive the training sets and print the
quality of their labels, without training).

1. Writes the brain example (``--example brain2d``: ``make_brain2d_example``, axial slices, the
   default, which a short CPU budget can train; ``brain``: the 3D ``make_brain_example``) with
   ``--train-cases`` + ``--test-cases`` cases, seed 0, at ``--spacing`` mm: complete labels
   (background, grey matter, white matter, lesion).
2. Derives the weak training sets from it with ``medseg.weak`` (same images, same held-out
   cases with their complete labels):

   - ``full``: the complete labels (the reference);
   - ``scribbles``: medial-line scribbles of every region (on every fifth slice in 3D; a 2D
     slice is scribbled whole), each lesion marked by one stroke of at most 5 voxels,
     everything else ``ignore`` (``make_sparse_dataset(kind="scribbles")``);
   - ``scribbles-no-entropy``: the same scribbles without the entropy term on the unlabelled
     voxels, which the plan adds for sparse labels (``training.extra_losses`` emptied; the
     absence term goes too);
   - ``scribbles-no-absence``: the same scribbles with the entropy term but without the
     absence term, which the plan adds because every lesion carries a stroke (the dataset
     declares ``every_object_marked``): unmarked voxels beyond the strokes' reach are taught
     not to be lesion;
   - ``short-scribbles`` / ``short-scribbles-no-entropy``: strokes cut to 60 medial-line voxels
     per region (``SparseConfig(max_stroke=60)``, under 2 % of the voxels), with and without
     the entropy term;
   - ``scribbles-grown`` / ``short-scribbles-grown``: those scribbles grown into dense
     pseudo-labels by the multi-label random walker (``grown_dataset``: a voxel takes the class
     whose marks a walk from it most likely reaches first, if that probability is >= 0.8;
     the rest stays ``ignore``);
   - ``naive-scribbles``: the same scribbles read as complete masks (unmarked = background): the
     naive baseline;
   - ``corrupt30``: 30 % of the cases corrupted (``corrupt_dataset``: missing components,
     flipped classes, erosion/dilation, shifts) and trained as if clean (naive);
   - ``corrupt30-corrected``: the same labels trained with early-learning label correction
     (``medseg.weak.correction``: after half the budget, confident disagreements relabelled);
   - ``staple``: three simulated raters per case (``simulate_raters``: independent corruptions
     of every case) and their STAPLE consensus (``consensus_dataset``) as the training label;
   - ``single-rater``: rater 0 alone as the training label (the naive baseline of ``staple``);
   - ``boxes``: one box per connected component of every class, turned into pseudo-masks by
     the classical random-walker engine (``boxes_dataset``);
   - ``boxes-corrected``: the same pseudo-masks trained with the early-learning label correction
     of ``corrupt30-corrected`` (the network's confident disagreements replace the pseudo-mask
     after half the budget: refinement during training);
   - ``boxes-prior``: the same boxes painted as the label (``boxes_dataset(painted=True)``),
     trained with the box prior (``training.loss: box_prior``: background outside the boxes,
     every line across a box holds its object);
   - ``boxes-naive``: the painted boxes trained as if they were masks (the naive baseline);
   - ``rater-sampling``: the three simulated raters, each patch trained on one rater's label
     drawn at random (``training.rater_sampling``; the STAPLE consensus only steers sampling
     and validation);
   - ``rater-soft``: the same raters, each patch trained on the raters' vote fractions per
     voxel (``training.rater_soft_targets``: soft Dice + CE);
   - ``half-labelled``: the first half of the training cases only (the labelled-only baseline
     of ``half-semi``);
   - ``half-semi``: the same labelled half plus the other half's images without labels, trained
     with the mean teacher (``train_model(unlabelled=...)``);
   - ``partial``: the first half of the cases annotates grey and white matter only, the second
     half the lesions only, declared in ``annotated_classes`` (marginal loss);
   - ``partial-naive``: the same label maps without the declaration (unannotated classes
     trained as background).
3. Trains every variant with ``train_model(folds="all", device="cpu")`` on the same CPU plan
   with ``--seconds`` of training each, predicts the held-out cases (no TTA) and scores them
   against their complete labels with ``medseg.evaluate.evaluate_folders``.

Printed: held-out Dice per class of every variant, its ratio to ``full`` (the goal of a weak
variant is a ratio near 1; the naive baseline shows what ignoring the weakness costs), the
annotated-voxel fraction of sparse variants, the precision and recall per class of each
variant's training labels against the complete ones (:func:`label_quality`: what the labels
teach, apart from how training uses them), the CPU model and ``uptime`` load before and after.
With a short budget the reference itself is far from converged: read the ratios as
short-budget figures, not as what the variants reach after full training.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from benchtools import cpu_model, load

LESION = 3
ITERATIONS_PER_EPOCH = 50


def _scribbles(full: Path, out: Path, seed: int) -> Path:
    from medseg.weak import SparseConfig, make_sparse_dataset

    config = SparseConfig(every=5, stroke_classes=(LESION,), stroke_length=5)
    return make_sparse_dataset(full, out, kind="scribbles", config=config, seed=seed)


def _short_scribbles(full: Path, out: Path, seed: int) -> Path:
    from medseg.weak import SparseConfig, make_sparse_dataset

    config = SparseConfig(every=5, stroke_classes=(LESION,), stroke_length=5, max_stroke=60)
    return make_sparse_dataset(full, out, kind="scribbles", config=config, seed=seed)


def _grown(
    sparse: Callable[[Path, Path, int], Path], reach_mm: float | None = None
) -> Callable[[Path, Path, int], Path]:
    """The ``sparse`` variant's labels grown by the random walker (``grown_dataset``)."""

    def make(full: Path, out: Path, seed: int) -> Path:
        from medseg.weak import grown_dataset

        marks = sparse(full, out.with_name(f"{out.name}_marks"), seed)
        return grown_dataset(marks, out, reach_mm=reach_mm)

    return make


def _naive_scribbles(full: Path, out: Path, seed: int) -> Path:
    from medseg.weak import SparseConfig, make_sparse_dataset

    config = SparseConfig(every=5, stroke_classes=(LESION,), stroke_length=5)
    return make_sparse_dataset(full, out, kind="naive-scribbles", config=config, seed=seed)


def _full(full: Path, out: Path, seed: int) -> Path:
    return full


def _corrupt30(full: Path, out: Path, seed: int) -> Path:
    from medseg.weak import CorruptionConfig, corrupt_dataset

    return corrupt_dataset(full, out, config=CorruptionConfig(case_fraction=0.3), seed=seed)


def _raters(full: Path, out: Path, seed: int) -> Path:
    from medseg.weak import simulate_raters

    return simulate_raters(full, out.with_name(out.name + "_raters"), raters=3, seed=seed)


def _staple(full: Path, out: Path, seed: int) -> Path:
    from medseg.weak import consensus_dataset

    return consensus_dataset(_raters(full, out, seed), out)


def _single_rater(full: Path, out: Path, seed: int) -> Path:
    """Rater 0 of the simulated raters alone, as the training label (the naive baseline)."""
    raters = _raters(full, out.with_name(out.name + "_src"), seed)
    shutil.copytree(raters, out)
    for path in (out / "labelsTr").iterdir():
        if "_rater0" in path.name:
            path.rename(path.with_name(path.name.replace("_rater0", "")))
        else:
            path.unlink()
    return out


def _boxes(full: Path, out: Path, seed: int) -> Path:
    from medseg.weak import boxes_dataset

    return boxes_dataset(full, out)


def _painted_boxes(full: Path, out: Path, seed: int) -> Path:
    from medseg.weak import boxes_dataset

    return boxes_dataset(full, out, painted=True)


def _halves(full: Path) -> tuple[list, list]:
    from medseg.data import load_dataset

    cases = sorted(load_dataset(full).labelled, key=lambda c: c.case_id)
    return cases[: len(cases) // 2], cases[len(cases) // 2 :]


def _unlabelled_folder(dataset: Path) -> Path:
    return dataset.with_name(dataset.name + "_unlabelled")


def _half_labelled(full: Path, out: Path, seed: int) -> Path:
    """The first half of the training cases; the second half removed."""
    shutil.copytree(full, out)
    _, rest = _halves(full)
    for case in rest:
        for path in case.image_paths:
            (out / "imagesTr" / path.name).unlink()
        (out / "labelsTr" / case.label_path.name).unlink()
    meta = json.loads((out / "dataset.json").read_text())
    meta["numTraining"] -= len(rest)
    (out / "dataset.json").write_text(json.dumps(meta, indent=2))
    return out


def _half_semi(full: Path, out: Path, seed: int) -> Path:
    """``half-labelled`` plus the second half's images in a folder of unlabelled images."""
    _half_labelled(full, out, seed)
    folder = _unlabelled_folder(out)
    folder.mkdir()
    for case in _halves(full)[1]:
        for path in case.image_paths:
            shutil.copy(path, folder / path.name)
    return out


def _partial_labels(full: Path, out: Path, *, declare: bool) -> Path:
    """First half: grey and white matter only; second half: lesions only."""
    import numpy as np

    from medseg.io import read_image, write_image
    from medseg.weak.partial import write_partial_declaration

    shutil.copytree(full, out)
    first, second = _halves(full)
    declared = {}
    for cases, keep in ((first, (1, 2)), (second, (LESION,))):
        for case in cases:
            path = out / "labelsTr" / case.label_path.name
            label = read_image(path)
            kept = np.where(np.isin(label.array, keep), label.array, 0).astype(label.array.dtype)
            write_image(label.with_array(kept), path)
            declared[case.case_id] = sorted(set(np.unique(kept).tolist()) - {0})
    if declare:
        write_partial_declaration(out, declared)
    return out


def _partial(full: Path, out: Path, seed: int) -> Path:
    return _partial_labels(full, out, declare=True)


def _partial_naive(full: Path, out: Path, seed: int) -> Path:
    return _partial_labels(full, out, declare=False)


VARIANTS: dict[str, Callable[[Path, Path, int], Path]] = {
    "full": _full,
    "scribbles": _scribbles,
    "scribbles-no-entropy": _scribbles,
    "scribbles-no-absence": _scribbles,
    "short-scribbles": _short_scribbles,
    "short-scribbles-no-entropy": _short_scribbles,
    "scribbles-grown": _grown(_scribbles),
    "short-scribbles-grown": _grown(_short_scribbles),
    "short-scribbles-grown-5mm": _grown(_short_scribbles, reach_mm=5.0),
    "short-scribbles-grown-10mm": _grown(_short_scribbles, reach_mm=10.0),
    "naive-scribbles": _naive_scribbles,
    "corrupt30": _corrupt30,
    "corrupt30-corrected": _corrupt30,
    "staple": _staple,
    "single-rater": _single_rater,
    "boxes": _boxes,
    "boxes-corrected": _boxes,
    "boxes-prior": _painted_boxes,
    "boxes-naive": _painted_boxes,
    "rater-sampling": _staple,
    "rater-soft": _staple,
    "half-labelled": _half_labelled,
    "half-semi": _half_semi,
    "partial": _partial,
    "partial-naive": _partial_naive,
}
TRAIN_OPTIONS = {
    "rater-sampling": {"overrides": {"training.rater_sampling": True}},
    "scribbles-no-entropy": {"overrides": {"training.extra_losses": {}}},
    "scribbles-no-absence": {"overrides": {"training.extra_losses": {"entropy": 0.1}}},
    "short-scribbles-no-entropy": {"overrides": {"training.extra_losses": {}}},
    "rater-soft": {"overrides": {"training.rater_soft_targets": True}},
    "boxes-prior": {"overrides": {"training.loss": "box_prior"}},
}


def label_quality(dataset: Path, full: Path) -> dict[str, dict[str, float]]:
    """Precision and recall per class of a variant's training labels against the complete ones.

    Precision: of the voxels a training label marks as class k (background included: the
    naive baselines mark every unannotated voxel background), the share that is k in the
    complete label; recall: of the complete label's k voxels, the share marked k. Ignored
    voxels count as unmarked. Pooled over the training cases both datasets label; a case with
    several raters is scored on its main label (the STAPLE consensus). It tells what the labels
    teach, apart from how training uses them.
    """
    import numpy as np

    from medseg.data import load_dataset
    from medseg.io import read_image

    weak, reference = load_dataset(dataset), load_dataset(full)
    truth = {case.case_id: case.label_path for case in reference.labelled}
    names = {value: name for name, value in reference.labels.labels.items()}
    names.pop(reference.labels.ignore, None)
    counts = {value: np.zeros(3) for value in names}  # marked and right, marked, true
    for case in weak.labelled:
        if case.case_id not in truth:
            continue
        marks = read_image(case.label_path).array
        ref = read_image(truth[case.case_id]).array
        for value in names:
            mine, true = marks == value, ref == value
            counts[value] += ((mine & true).sum(), mine.sum(), true.sum())
    return {
        names[value]: {
            "precision": float(c[0] / c[1]) if c[1] else float("nan"),
            "recall": float(c[0] / c[2]) if c[2] else float("nan"),
        }
        for value, c in counts.items()
    }


def train_and_score(
    dataset: Path,
    work: Path,
    seconds: float,
    reference: Path,
    *,
    correct: bool = False,
    iterations: int | None = None,
    **options,
) -> dict:
    """Train ``dataset`` for ``seconds``, predict ``reference``'s held-out cases, score them.

    With ``iterations`` the plan trains for that many iterations (epochs of 50) instead of a
    time budget: equal work for every variant whatever share of a loaded CPU each one gets.
    """
    from medseg.evaluate import evaluate_folders
    from medseg.infer import Predictor
    from medseg.infer.files import predict_files
    from medseg.plan import PlanBudget
    from medseg.train import train_model
    from medseg.weak import correction_wrapper

    if iterations is not None:
        options["overrides"] = {
            **options.get("overrides", {}),
            "training.time_budget_s": None,
            "training.iterations_per_epoch": ITERATIONS_PER_EPOCH,
            "training.epochs": max(1, iterations // ITERATIONS_PER_EPOCH),
        }
    start = time.perf_counter()
    result = train_model(
        dataset,
        work / "model",
        folds="all",
        device="cpu",
        budget=PlanBudget.for_device("cpu", time_budget_s=seconds),
        wrap_loss=correction_wrapper(start_fraction=0.5, threshold=0.9) if correct else None,
        **options,
    )
    train_s = time.perf_counter() - start
    metrics = json.loads((result.folds[0].path / "val_metrics.json").read_text())
    predictor = Predictor(result.model_dir, device="cpu", fast=True)
    report = predict_files(predictor, reference / "imagesTs", work / "pred")
    if not report.ok:
        raise RuntimeError(f"prediction failed: {report.failures}")
    scored = evaluate_folders(
        work / "pred",
        reference / "labelsTs",
        dataset_json=reference / "dataset.json",
        report=False,
    )
    dice = {
        name: (stats.get("dice") or {}).get("mean")
        for name, stats in scored.summary["classes"].items()
    }
    return {
        "dice": dice,
        "train_s": round(train_s, 1),
        "iterations": metrics.get("iterations") or iterations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="training time per variant")
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="train each variant for this many iterations instead of --seconds (multiple of 50)",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/medseg-bench-weak"))
    parser.add_argument("--example", choices=["brain2d", "brain"], default="brain2d")
    parser.add_argument("--train-cases", type=int, default=20)
    parser.add_argument("--test-cases", type=int, default=8)
    parser.add_argument("--spacing", type=float, default=None, help="voxel size, mm")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--seed", type=int, default=None, help="training seed (default: the plan's)"
    )
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--labels-only",
        action="store_true",
        help="derive the training sets and print their label quality; train nothing",
    )
    args = parser.parse_args()

    import torch

    from medseg.data.example import make_brain2d_example, make_brain_example
    from medseg.weak import sparse_coverage

    torch.set_num_threads(args.threads)
    if args.work.exists():
        shutil.rmtree(args.work)
    make = make_brain_example if args.example == "brain" else make_brain2d_example
    spacing = args.spacing or (3.0 if args.example == "brain" else 1.0)
    full = make(
        args.work / "Dataset001_BrainExample",
        cases=args.train_cases,
        test_cases=args.test_cases,
        seed=0,
        spacing_mm=spacing,
    )
    print(
        f"CPU: {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{args.threads} threads; {args.train_cases} training + {args.test_cases} held-out "
        f"{args.example} cases at {spacing:g} mm; "
        + (
            f"{args.iterations} iterations per variant"
            if args.iterations
            else f"{args.seconds:.0f} s training per variant"
        )
    )
    print("load before:", load(), flush=True)
    names = ["full", *[v for v in args.variants if v != "full"]]
    datasets = {name: VARIANTS[name](full, args.work / f"data_{name}", 0) for name in names}
    results = {}
    for name, dataset in datasets.items():
        note = ""
        if "scribbles" in name and not name.startswith("naive"):
            labelled = 100 * sparse_coverage(dataset)["mean"]
            note = f"annotated {labelled:.2f} % of voxels; "
            if "grown" in name:
                marks = 100 * sparse_coverage(dataset.with_name(f"{dataset.name}_marks"))["mean"]
                note = f"marks {marks:.2f} % of voxels, labelled after growing {labelled:.2f} %; "
        quality = label_quality(dataset, full)
        note += "training labels precision / recall " + ", ".join(
            f"{c} {q['precision']:.2f} / {q['recall']:.2f}" for c, q in quality.items()
        )
        if args.labels_only:
            print(f"| {name} | {note} |", flush=True)
            continue
        correct = name.endswith("-corrected")
        options = dict(TRAIN_OPTIONS.get(name, {}))
        if name == "half-semi":
            options["unlabelled"] = _unlabelled_folder(dataset)
        scores = train_and_score(
            dataset,
            args.work / name,
            args.seconds,
            full,
            correct=correct,
            iterations=args.iterations,
            seed=args.seed,
            **options,
        )
        results[name] = {**scores, "note": note}
        print(name, json.dumps(results[name]), "load:", load(), flush=True)
    if args.labels_only:
        return
    classes = list(results["full"]["dice"])
    print("\n| variant | " + " | ".join(classes) + " | iterations | note |")
    print("|---|" + "---|" * (len(classes) + 2))
    for name, res in results.items():
        cells = []
        for c in classes:
            value, ref = res["dice"].get(c), results["full"]["dice"].get(c)
            ratio = f" ({value / ref:.0%})" if value is not None and ref else ""
            cells.append("n/a" if value is None else f"{value:.3f}{ratio}")
        print(f"| {name} | " + " | ".join(cells) + f" | {res['iterations']} | {res['note']} |")
    print("load after:", load())


if __name__ == "__main__":
    main()
