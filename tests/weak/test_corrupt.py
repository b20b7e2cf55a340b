"""The label-corruption tool: each operation, determinism by seed, dataset writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from weak_phantoms import phantom_label

from medseg.data import load_dataset
from medseg.errors import ConfigError
from medseg.io import read_image
from medseg.weak.corrupt import (
    CorruptionConfig,
    corrupt_dataset,
    corrupt_label,
    simulate_raters,
)

OFF = {"drop_probability": 0.0, "flip_probability": 0.0, "max_radius": 0, "max_shift": 0}


def _config(**changes) -> CorruptionConfig:
    return CorruptionConfig(**{**OFF, **changes})


def test_all_operations_off_is_the_identity() -> None:
    label = phantom_label()
    out, log = corrupt_label(label, np.random.default_rng(0), _config())
    np.testing.assert_array_equal(out, label)
    assert log == {"dropped": 0, "flipped": 0, "radius": {}, "shift": [0, 0, 0]}


def test_deterministic_by_seed() -> None:
    label = phantom_label()
    config = CorruptionConfig(drop_probability=0.3, flip_probability=0.3)
    a, log_a = corrupt_label(label, np.random.default_rng(7), config)
    b, log_b = corrupt_label(label, np.random.default_rng(7), config)
    np.testing.assert_array_equal(a, b)
    assert log_a == log_b
    others = [corrupt_label(label, np.random.default_rng(s), config)[0] for s in range(8)]
    assert any(not np.array_equal(a, o) for o in others)


def test_every_component_dropped_or_flipped() -> None:
    label = phantom_label()
    dropped, log = corrupt_label(label, np.random.default_rng(0), _config(drop_probability=1.0))
    assert not dropped.any()
    assert log["dropped"] == 3  # one organ, two lesions
    flipped, log = corrupt_label(label, np.random.default_rng(0), _config(flip_probability=1.0))
    assert log["flipped"] == 3
    np.testing.assert_array_equal(flipped == 0, label == 0)
    np.testing.assert_array_equal(flipped[label == 1], 2)
    np.testing.assert_array_equal(flipped[label == 2], 1)


def test_boundary_errors_match_scipy_morphology() -> None:
    label = (phantom_label() > 0).astype(np.int16)  # one class
    ball = ndimage.generate_binary_structure(3, 1)
    for seed in range(6):
        out, log = corrupt_label(label, np.random.default_rng(seed), _config(max_radius=2))
        r = log["radius"]["1"]
        expected = (
            ndimage.binary_dilation(label == 1, ball, r)
            if r > 0
            else ndimage.binary_erosion(label == 1, ball, -r)
        )
        np.testing.assert_array_equal(out == 1, expected)


def test_shift_translates_with_background_fill() -> None:
    label = phantom_label()
    out, log = corrupt_label(label, np.random.default_rng(3), _config(max_shift=3))
    dz, dy, dx = log["shift"]
    assert any(log["shift"])
    expected = np.zeros_like(label)
    z, y, x = label.shape
    expected[
        max(dz, 0) : z + min(dz, 0), max(dy, 0) : y + min(dy, 0), max(dx, 0) : x + min(dx, 0)
    ] = label[
        max(-dz, 0) : z - max(dz, 0), max(-dy, 0) : y - max(dy, 0), max(-dx, 0) : x - max(dx, 0)
    ]
    np.testing.assert_array_equal(out, expected)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="corruption settings"):
        CorruptionConfig(case_fraction=1.5)


def test_corrupt_dataset_corrupts_the_requested_fraction(
    phantom_dataset: Path, tmp_path: Path
) -> None:
    config = CorruptionConfig(case_fraction=2 / 3, drop_probability=1.0)
    out = corrupt_dataset(phantom_dataset, tmp_path / "noisy", config=config, seed=1)
    logs = json.loads((out / "dataset.json").read_text())["weak_labels"]["cases"]
    assert len(logs) == 2
    for case in load_dataset(out).labelled:
        clean = read_image(phantom_dataset / "labelsTr" / f"{case.case_id}.nii.gz").array
        noisy = read_image(case.label_path).array
        assert np.array_equal(clean, noisy) == (case.case_id not in logs)
    again = corrupt_dataset(phantom_dataset, tmp_path / "again", config=config, seed=1)
    assert json.loads((again / "dataset.json").read_text())["weak_labels"]["cases"] == logs


def test_simulated_raters_form_a_rater_dataset(phantom_dataset: Path, tmp_path: Path) -> None:
    out = simulate_raters(phantom_dataset, tmp_path / "raters", raters=2)
    dataset = load_dataset(out)
    assert not dataset.labelled
    case = dataset.case("case_0")
    assert [p.name for p in case.rater_paths] == ["case_0_rater0.nii.gz", "case_0_rater1.nii.gz"]
    first, second = (read_image(p).array for p in case.rater_paths)
    assert not np.array_equal(first, second)
