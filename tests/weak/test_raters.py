"""Several raters: the layout, STAPLE against SimpleITK, GED on analytic cases, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from weak_phantoms import phantom_label, write_phantom_dataset

from medseg.data import check_dataset, load_dataset
from medseg.errors import DatasetError, GeometryError
from medseg.io import Image, read_image, write_image
from medseg.weak.rater_metrics import (
    agreement_calibration_error,
    evaluate_against_raters,
    generalised_energy_distance,
    iou_distance,
    score_against_raters,
)
from medseg.weak.raters import (
    consensus_dataset,
    majority_vote,
    rater_frequency,
    read_raters,
    staple_consensus,
    staple_probability,
)


def _noisy_raters(seed: int = 0, count: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    label = phantom_label()
    raters = []
    for _ in range(count):
        noisy = label.copy()
        flip = rng.random(label.shape) < 0.05
        noisy[flip] = rng.integers(0, 3, int(flip.sum()))
        raters.append(noisy)
    return np.stack(raters)


def test_binary_staple_matches_simpleitk_directly() -> None:
    masks = _noisy_raters() == 1
    probability, sensitivity, specificity = staple_probability(masks)
    reference = sitk.STAPLE([sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks], 1.0)
    np.testing.assert_allclose(probability, sitk.GetArrayFromImage(reference), atol=1e-6)
    assert len(sensitivity) == len(specificity) == 3
    assert all(0.8 < s <= 1 for s in sensitivity)
    truth = phantom_label() == 1
    assert ((probability >= 0.5) == truth).mean() > 0.99  # independent noise averages out


def test_multilabel_consensus_matches_simpleitk_where_decided() -> None:
    raters = _noisy_raters(1)
    consensus = staple_consensus(raters)
    reference = sitk.GetArrayFromImage(
        sitk.MultiLabelSTAPLE([sitk.GetImageFromArray(r.astype(np.uint16)) for r in raters], 3)
    )
    decided = reference != 3
    np.testing.assert_array_equal(consensus[decided], reference[decided])
    assert set(np.unique(consensus)) <= {0, 1, 2}
    assert (consensus == phantom_label()).mean() > 0.97


def test_consensus_of_identical_and_empty_raters() -> None:
    label = phantom_label()
    np.testing.assert_array_equal(staple_consensus(np.stack([label] * 3)), label)
    empty = np.zeros((3, 4, 5, 6), np.int16)
    np.testing.assert_array_equal(staple_consensus(empty), empty[0])
    probability, sensitivity, _ = staple_probability(empty.astype(bool))
    assert not probability.any()
    assert np.isnan(sensitivity).all()


def test_majority_vote_and_frequency() -> None:
    raters = np.array([[0, 1, 2, 2], [1, 1, 0, 2], [1, 2, 0, 1]])
    np.testing.assert_array_equal(majority_vote(raters), [1, 1, 0, 2])
    frequency = rater_frequency(raters, 3)
    np.testing.assert_allclose(frequency.sum(axis=0), 1.0)
    np.testing.assert_allclose(frequency[:, 0], [1 / 3, 2 / 3, 0])


def test_ged_analytic_cases() -> None:
    a = np.zeros((4, 4), int)
    a[:2] = 1  # 8 voxels
    b = np.zeros((4, 4), int)
    b[1:3] = 1  # overlaps a in 4 of 12: IoU 1/3
    assert iou_distance(a, b, [1]) == pytest.approx(2 / 3)
    assert generalised_energy_distance([a], [a], [1]) == 0
    assert generalised_energy_distance([a, b], [b, a], [1]) == pytest.approx(0)
    # one sample A against raters {A, B}: 2 * d/2 - 0 - 2d/4 = d/2
    assert generalised_energy_distance([a], [a, b], [1]) == pytest.approx(1 / 3)
    empty = np.zeros((4, 4), int)
    assert generalised_energy_distance([empty], [empty, empty], [1]) == 0  # negative frame
    # disjoint single maps: GED^2 = 2 * 1 - 0 - 0
    assert generalised_energy_distance([a], [np.where(a == 1, 0, 1)], [1]) == pytest.approx(2)


def test_agreement_calibration() -> None:
    agreement = np.array([0.0, 1 / 3, 2 / 3, 1.0, 1.0])
    assert agreement_calibration_error(agreement, agreement) == pytest.approx(0, abs=1e-12)
    overconfident = (agreement > 0.5).astype(float)
    assert agreement_calibration_error(overconfident, agreement) > 0.1


def test_score_against_raters() -> None:
    raters = _noisy_raters(2)
    truth = phantom_label()
    scores = score_against_raters(truth, raters, [1, 2], probabilities=rater_frequency(raters, 3))
    assert len(scores["dice_per_rater"]["1"]) == 3
    assert scores["consensus_dice"]["1"] > scores["mean_rater_dice"]["1"] > 0.9
    cross = np.mean([iou_distance(truth, r, [1, 2]) for r in raters])
    assert scores["ged"] == pytest.approx(2 * cross - scores["rater_distance"])
    shifted = score_against_raters(phantom_label(shift=2), raters, [1, 2])
    assert 0 < scores["ged"] < shifted["ged"]
    assert scores["calibration_error"]["1"] == pytest.approx(0, abs=1e-6)


def _with_raters(root: Path, rng_seed: int = 0) -> Path:
    """The phantom dataset with case_0's and case_1's labels replaced by three raters each."""
    raters = _noisy_raters(rng_seed)
    for case in ("case_0", "case_1"):
        label_path = root / "labelsTr" / f"{case}.nii.gz"
        label = read_image(label_path)
        label_path.unlink()
        for k, rater in enumerate(raters):
            write_image(
                label.with_array(rater[None]), root / "labelsTr" / f"{case}_rater{k}.nii.gz"
            )
    return root


def test_rater_layout_consensus_and_evaluation(tmp_path: Path) -> None:
    root = _with_raters(write_phantom_dataset(tmp_path / "Dataset002_Raters"))
    dataset = load_dataset(root)
    case = dataset.case("case_0")
    assert case.label_path is None
    assert [p.name for p in case.rater_paths] == [f"case_0_rater{k}.nii.gz" for k in range(3)]
    assert not [p for p in check_dataset(dataset).problems if "without image" in p.message]
    out = consensus_dataset(root, tmp_path / "consensus")
    trained = load_dataset(out)
    assert len(trained.labelled) == 3
    assert len(trained.case("case_1").rater_paths) == 3
    consensus = read_image(out / "labelsTr" / "case_0.nii.gz").array[0]
    np.testing.assert_array_equal(consensus, staple_consensus(read_raters(case)[0]))
    predictions = tmp_path / "pred"
    predictions.mkdir()
    label = read_image(root / "labelsTr" / "case_0_rater0.nii.gz")
    write_image(label.with_array(phantom_label()[None]), predictions / "case_0.nii.gz")
    agreement = rater_frequency(read_raters(case)[0], 3)
    probabilities = np.round(agreement * 255).astype(np.uint8)
    write_image(
        Image(probabilities, label.spacing, label.origin, label.direction),
        predictions / "case_0_probabilities.nii.gz",
    )
    result = evaluate_against_raters(predictions, root, tmp_path / "raters.json")
    assert list(result["cases"]) == ["case_0"]
    assert result["mean"]["calibration_error"]["1"] < 0.01  # the agreement itself
    assert result["mean"]["consensus_dice"]["1"] > 0.95
    assert (tmp_path / "raters.json").is_file()


def test_rater_with_mismatched_geometry_is_a_clear_error(tmp_path: Path) -> None:
    root = _with_raters(write_phantom_dataset(tmp_path / "Dataset002_Raters"))
    path = root / "labelsTr" / "case_0_rater2.nii.gz"
    rater = read_image(path)
    write_image(Image(rater.array, (3.0, 1.0, 1.0), rater.origin, rater.direction), path)
    with pytest.raises(GeometryError, match=r"case_0_rater2.nii.gz: rater label does not match"):
        consensus_dataset(root, tmp_path / "consensus")
    with pytest.raises(DatasetError, match="no rater files"):
        consensus_dataset(write_phantom_dataset(tmp_path / "plain"), tmp_path / "c2")
