"""Case-level classification with metadata: the joint head vs metadata alone, on held-out cases.

Plain script: ``python benchmarks/bench_classify.py [--train-cases 16] [--test-cases 16]
[--epochs 6] [--iterations 25] [--dropout 0] [--variants both,image,peer] [--work DIR]``.

1. Writes a synthetic dataset (``imagesTr``/``labelsTr``, ``imagesTs``/``labelsTs``,
   ``cases.csv``): 40^3 voxel volumes (1 mm) with a bright ellipsoidal organ (label 1) holding
   one lesion (label 2) in ``unifocal`` cases or three in ``multifocal`` ones (half each). The
   case table has the target ``focality`` and two fields: ``age``, correlated with the target
   (mean 55 +- 6 years by class, sd 10: informative, not decisive) and ``sex`` (noise).
2. Trains the same plan (``folds="all"``, ``--epochs`` x ``--iterations``, seed 0) twice with
   ``classify="focality"``: ``image+metadata`` (``metadata=["age", "sex"]``) and ``image``
   (no metadata), then predicts the test cases (no TTA) and scores ``classification.json``
   with :func:`medseg.evaluate.classification.evaluate_classification`; the AUC is checked
   against scikit-learn's ``roc_auc_score`` on the same probabilities.
3. Peer: scikit-learn's ``LogisticRegression`` on the standardised metadata alone (age, sex
   one-hot), fitted on the training cases: what the metadata says without the image.

Printed: AUC, accuracy (correct / n), training seconds and the test Dice of the lesion label per
variant, the CPU model and the load before and after. Training is epoch-counted (not timed), so
a run is reproducible on a CPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np

from benchtools import cpu_model, load

SHAPE = (40, 40, 40)


def make_case(rng: np.random.Generator, lesions: int) -> tuple[np.ndarray, np.ndarray]:
    """Image (Z, Y, X) float32 and labels (0 background, 1 organ, 2 lesion)."""
    grid = np.indices(SHAPE).astype(np.float32)
    centre = np.array(SHAPE) / 2 + rng.uniform(-2, 2, 3)
    radii = rng.uniform(11, 14, 3)
    organ = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) < 1
    labels = organ.astype(np.uint8)
    inside = np.argwhere(organ)
    placed = 0
    while placed < lesions:
        spot = inside[rng.integers(len(inside))]
        radius = rng.uniform(2.0, 3.0)
        ball = sum((g - c) ** 2 for g, c in zip(grid, spot, strict=True)) < radius**2
        if (ball & ~organ).any() or (labels[ball] == 2).any():
            continue
        labels[ball] = 2
        placed += 1
    image = np.choose(labels, [0.0, 1.0, 2.2]).astype(np.float32)
    image += rng.normal(0, 0.35, SHAPE).astype(np.float32)
    return image, labels


def write_dataset(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """The nnU-Net-style dataset and its ``cases.csv``; returns ``root``."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n_train + n_test):
        split = "Tr" if index < n_train else "Ts"
        multifocal = index % 2 == 1
        image, labels = make_case(rng, 3 if multifocal else 1)
        case = f"c{index:03d}"
        nib.save(nib.Nifti1Image(image.T, np.eye(4)), root / f"images{split}/{case}_0000.nii.gz")
        nib.save(nib.Nifti1Image(labels.T, np.eye(4)), root / f"labels{split}/{case}.nii.gz")
        age = 55 + (6 if multifocal else -6) + rng.normal(0, 10)
        sex = "F" if rng.random() < 0.5 else "M"
        focality = "multifocal" if multifocal else "unifocal"
        rows.append((case, f"{age:.0f}", sex, focality))
    with open(root / "cases.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "age", "sex", "focality"])
        writer.writerows(rows)
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "CT"},
                "labels": {"background": 0, "organ": 1, "lesion": 2},
                "numTraining": n_train,
                "file_ending": ".nii.gz",
            }
        )
    )
    return root


def run_variant(dataset: Path, work: Path, metadata: list[str], args) -> dict[str, object]:
    """Train with the head, predict ``imagesTs`` and score the classification and the Dice."""
    from sklearn.metrics import roc_auc_score

    from medseg.evaluate import evaluate_folders
    from medseg.evaluate.classification import evaluate_classification
    from medseg.infer import Predictor
    from medseg.train import train_model

    start = time.perf_counter()
    train_model(
        dataset,
        work / "model",
        folds="all",
        epochs=args.epochs,
        device="cpu",
        seed=0,
        num_workers=0,
        overrides={
            "training.iterations_per_epoch": args.iterations,
            "training.val_iterations": 2,
            "training.classification.dropout": args.dropout,
        },
        classify="focality",
        metadata=metadata,
    )
    train_s = time.perf_counter() - start
    predictor = Predictor(work / "model", device="cpu", fast=True, case_table=dataset / "cases.csv")
    report = predictor.predict_files(dataset / "imagesTs", work / "pred")
    if not report.ok:
        raise RuntimeError(f"prediction failed: {report.failures}")
    scores = evaluate_classification(work / "pred", dataset / "cases.csv")
    truth = [row["true"] == "unifocal" for row in scores["per_case"].values()]
    p_second = [row["probabilities"]["unifocal"] for row in scores["per_case"].values()]
    assert abs(roc_auc_score(truth, p_second) - scores["auc"]) < 1e-9, "AUC differs from sklearn"
    seg = evaluate_folders(work / "pred", dataset / "labelsTs", report=False)
    return {
        "auc": scores["auc"],
        "accuracy": scores["accuracy"],
        "correct": f"{scores['correct']}/{scores['n']}",
        "train_s": round(train_s, 1),
        "lesion_dice": seg.summary["classes"]["lesion"]["dice"]["mean"],
    }


def metadata_peer(dataset: Path, n_train: int) -> dict[str, object]:
    """scikit-learn logistic regression on age and sex alone (train cases -> test cases)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    with open(dataset / "cases.csv") as handle:
        rows = list(csv.DictReader(handle))
    x = np.array([[float(r["age"]), r["sex"] == "F"] for r in rows], dtype=float)
    x[:, 0] = (x[:, 0] - x[:n_train, 0].mean()) / x[:n_train, 0].std()
    y = np.array([r["focality"] == "unifocal" for r in rows])
    model = LogisticRegression().fit(x[:n_train], y[:n_train])
    p = model.predict_proba(x[n_train:])[:, 1]
    correct = int(((p > 0.5) == y[n_train:]).sum())
    n = len(p)
    return {
        "auc": roc_auc_score(y[n_train:], p),
        "accuracy": correct / n,
        "correct": f"{correct}/{n}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-cases", type=int, default=16)
    parser.add_argument("--test-cases", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--dropout", type=float, default=0.0, help="the head's dropout")
    parser.add_argument("--variants", default="both,image,peer", help="of both, image, peer")
    parser.add_argument("--work", type=Path, default=Path("/tmp/medseg_bench_classify"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    dataset = write_dataset(args.work / "Dataset900_Focality", args.train_cases, args.test_cases)
    print(f"CPU: {cpu_model()}; load before: {load()}")
    print(f"{args.train_cases} training / {args.test_cases} test cases; target focality")
    print(f"head dropout {args.dropout}; {args.epochs} epochs x {args.iterations} iterations")
    chosen = args.variants.split(",")
    results = {}
    if "both" in chosen:
        both = run_variant(dataset, args.work / "both", ["age", "sex"], args)
        results["image+metadata (medseg)"] = both
    if "image" in chosen:
        results["image only (medseg)"] = run_variant(dataset, args.work / "image", [], args)
    if "peer" in chosen:
        results["metadata only (sklearn logistic)"] = metadata_peer(dataset, args.train_cases)
    for name, row in results.items():
        extra = ", ".join(
            f"{k} {v}" for k, v in row.items() if k not in ("auc", "accuracy", "correct")
        )
        print(
            f"{name:<34} | AUC {row['auc']:.3f} | accuracy {row['accuracy']:.3f} "
            f"({row['correct']}) | {extra}"
        )
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
