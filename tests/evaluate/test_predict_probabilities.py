"""Calibration from the probability images ``medseg predict --probabilities`` writes."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import DatasetError
from medseg.evaluate import evaluate_folders, expected_calibration_error
from medseg.io import read_image, write_image


def test_predict_probability_images_give_the_ece_of_their_values(dataset):
    root, pred_dir, cases = dataset
    expected = {}
    for case in cases:
        label_image = read_image(pred_dir / f"{case}.nii.gz")
        labels = label_image.array[0].astype(int)
        probs = np.eye(3)[labels].transpose(3, 0, 1, 2) * 0.7 + 0.1
        stored = np.round(probs * 255).astype(np.uint8)  # as medseg predict writes them
        write_image(label_image.with_array(stored), pred_dir / f"{case}_probabilities.nii.gz")
        ref = read_image(root / "labelsTr" / f"{case}.nii.gz").array[0].astype(int)
        expected[case] = expected_calibration_error(stored / 255.0, ref).ece
    result = evaluate_folders(pred_dir, root, probabilities_dir=pred_dir)
    per_case = result.summary["calibration"]["ece_per_case"]
    assert per_case == pytest.approx(expected)
    assert len(result.rows) == 2 * len(cases)  # the probability images are not cases
    (pred_dir / f"{cases[0]}_probabilities.nii.gz").unlink()
    with pytest.raises(DatasetError, match=f"{cases[0]}_probabilities.nii.gz"):
        evaluate_folders(pred_dir, root, probabilities_dir=pred_dir)
