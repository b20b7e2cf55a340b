"""evaluate_folders on tiny synthetic NIfTI datasets: outputs, pairing and error paths."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from evaluate_shapes import SPACING, write_label

from medseg.errors import DatasetError, GeometryError
from medseg.evaluate import dice, evaluate_folders
from medseg.io import Image, read_image, write_image


def test_writes_csv_summary_and_report(dataset, tmp_path):
    root, pred_dir, cases = dataset
    progress = []
    out = tmp_path / "out"
    result = evaluate_folders(
        pred_dir,
        root,
        out_dir=out,
        nsd_tolerance_mm=2.0,
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert progress[-1] == (len(cases), len(cases))
    with open(out / "metrics_per_case.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(cases) * 2
    assert {r["class"] for r in rows} == {"ball", "box"}  # names from dataset.json
    case0 = cases[0]
    pred = read_image(pred_dir / f"{case0}.nii.gz").array[0]
    ref = read_image(root / "labelsTr" / f"{case0}.nii.gz").array[0]
    row = next(r for r in rows if r["case"] == case0 and r["class"] == "box")
    assert float(row["dice"]) == pytest.approx(dice(pred == 2, ref == 2))
    assert "nsd" in row
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cases"] == len(cases)
    assert summary["classes"]["ball"]["dice"]["n"] == len(cases)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5  # box plots and gallery, embedded
    assert 'src="http' not in html
    assert "Worst cases" in html
    assert result.out_dir == out


def test_two_plain_folders_with_options_and_regions(dataset, tmp_path):
    root, pred_dir, _ = dataset
    plain = tmp_path / "refs"
    shutil.copytree(root / "labelsTr", plain)
    result = evaluate_folders(
        pred_dir,
        plain,
        labels=[2],
        regions={"any": (1, 2)},
        nsd_tolerance_mm={"2": 1.0, "any": 3.0},
    )
    assert {r["class"] for r in result.rows} == {"2", "any"}
    assert all("nsd" in r for r in result.rows)
    assert result.summary["options"]["nsd_tolerance_mm"] == {"2": 1.0, "any": 3.0}


def test_parallel_workers_give_the_same_rows(dataset):
    root, pred_dir, _ = dataset
    serial = evaluate_folders(pred_dir, root)
    parallel = evaluate_folders(pred_dir, root, workers=2)
    assert json.dumps(serial.rows) == json.dumps(parallel.rows)


def test_missing_pair_is_a_dataset_error(dataset):
    root, pred_dir, cases = dataset
    (pred_dir / f"{cases[1]}.nii.gz").unlink()
    with pytest.raises(DatasetError, match=cases[1]):
        evaluate_folders(pred_dir, root)


def test_what_predict_writes_beside_a_label_map_is_not_a_case(dataset):
    """``medseg predict --uncertainty --probabilities`` output evaluates as it was written."""
    root, pred_dir, cases = dataset
    plain = evaluate_folders(pred_dir, root).rows
    for extra in ("entropy", "mutual_information", "probabilities"):
        shutil.copy(pred_dir / f"{cases[0]}.nii.gz", pred_dir / f"{cases[0]}_{extra}.nii.gz")
    assert json.dumps(evaluate_folders(pred_dir, root).rows) == json.dumps(plain)
    (pred_dir / f"{cases[0]}.nii.gz").unlink()  # the extras do not stand in for a prediction
    with pytest.raises(DatasetError, match=f"no prediction for 1 case\\(s\\): {cases[0]};"):
        evaluate_folders(pred_dir, root)
    (pred_dir / f"{cases[0]}_entropy.nii.gz").rename(pred_dir / "other_entropy.nii.gz")
    shutil.copy(pred_dir / f"{cases[1]}.nii.gz", pred_dir / f"{cases[0]}.nii.gz")
    with pytest.raises(DatasetError, match=r"no reference for 1 case\(s\): other_entropy"):
        evaluate_folders(pred_dir, root)


def test_geometry_mismatch_and_tolerance(dataset):
    root, pred_dir, cases = dataset
    labels = read_image(pred_dir / f"{cases[0]}.nii.gz").array[0]
    write_label(labels, pred_dir / f"{cases[0]}.nii.gz", spacing=(3.0, 0.8, 0.81))
    with pytest.raises(GeometryError, match="spacing"):
        evaluate_folders(pred_dir, root)
    assert evaluate_folders(pred_dir, root, geometry_tol=0.05).summary["n_cases"] == len(cases)


def test_unknown_label_values_warn_and_are_recorded(dataset):
    root, pred_dir, cases = dataset
    labels = read_image(pred_dir / f"{cases[2]}.nii.gz").array[0].copy()
    labels[0, 0, 0] = 7
    write_label(labels, pred_dir / f"{cases[2]}.nii.gz")
    with pytest.warns(UserWarning, match="not in the label set"):
        result = evaluate_folders(pred_dir, root)
    assert result.summary["unexpected_labels"] == {cases[2]: [7]}


def test_empty_reference_warns(dataset):
    root, pred_dir, _ = dataset
    with pytest.warns(UserWarning, match="empty reference"):
        result = evaluate_folders(pred_dir, root, labels=[1, 5])
    absent = [r for r in result.rows if r["class"] == "5"]
    assert {r["status"] for r in absent} == {"both_empty"}


def test_non_integer_labels_are_rejected(dataset):
    root, pred_dir, cases = dataset
    from medseg.io import Image, write_image

    write_image(
        Image.from_array(np.full((1, 12, 24, 24), 0.5, np.float32), spacing=SPACING),
        pred_dir / f"{cases[0]}.nii.gz",
    )
    with pytest.raises(DatasetError, match="non-integer"):
        evaluate_folders(pred_dir, root)


def test_probabilities_add_calibration(dataset, tmp_path):
    root, pred_dir, cases = dataset
    prob_dir = tmp_path / "probs"
    prob_dir.mkdir()
    for i, case in enumerate(cases):
        labels = read_image(pred_dir / f"{case}.nii.gz").array[0].astype(int)
        probs = np.eye(3)[labels].transpose(3, 0, 1, 2) * 0.9 + 0.1 / 3
        if i % 2:
            np.save(prob_dir / f"{case}.npy", probs)
        else:
            np.savez(prob_dir / f"{case}.npz", probabilities=probs)
    result = evaluate_folders(pred_dir, root, probabilities_dir=prob_dir)
    calibration = result.summary["calibration"]
    assert set(calibration["ece_per_case"]) == set(cases)
    assert sum(calibration["reliability"]["count"]) > 0
    (prob_dir / f"{cases[0]}.npz").unlink()
    with pytest.raises(DatasetError, match="probabilities"):
        evaluate_folders(pred_dir, root, probabilities_dir=prob_dir)


def test_labels_found_in_the_data_without_a_label_set(dataset, tmp_path):
    root, pred_dir, _ = dataset
    plain = tmp_path / "refs"
    shutil.copytree(root / "labelsTr", plain)
    result = evaluate_folders(pred_dir, plain)
    assert {r["class"] for r in result.rows} == {"1", "2"}
    assert result.summary["unexpected_labels"] == {}


def test_png_label_maps_pair_and_score(tmp_path):
    """2D label maps in PNG, as ``medseg predict`` writes them for PNG inputs."""
    ref = np.zeros((20, 24), np.uint8)
    ref[4:12, 5:15] = 1
    pred = np.roll(ref, 2, axis=1)
    for folder, labels in (("ref", ref), ("pred", pred)):
        (tmp_path / folder).mkdir()
        write_image(Image.from_array(labels[None]), tmp_path / folder / "slide_01.png")
    (row,) = evaluate_folders(tmp_path / "pred", tmp_path / "ref").rows
    assert row["case"] == "slide_01"
    assert row["dice"] == pytest.approx(dice(pred == 1, ref == 1))
