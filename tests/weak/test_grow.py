"""Sparse labels grown by the multi-label random walker: right classes, borders, ignore kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from weak_phantoms import phantom_label, write_stray_value

from medseg.data import load_dataset
from medseg.errors import DatasetError
from medseg.io import read_image
from medseg.weak import SparseConfig, grow_label, grown_dataset, make_sparse_dataset

IGNORE = 9


def _halves(noise: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(40, 40) image, dark left / bright right, its truth, and one mark line per half."""
    truth = np.zeros((40, 40), np.int16)
    truth[:, 20:] = 1
    rng = np.random.default_rng(0)
    image = (truth * 100 + rng.normal(0, noise, truth.shape))[None].astype(np.float32)
    marks = np.full_like(truth, IGNORE)
    marks[5:35, 8] = 0
    marks[5:35, 31] = 1
    return image, truth, marks


def test_marks_grow_to_the_edge_between_regions() -> None:
    image, truth, marks = _halves()
    grown = grow_label(image, marks, IGNORE, spacing=(1.0, 1.0), confidence=0.8)
    decided = grown != IGNORE
    assert decided.mean() > 0.9  # nearly every pixel is confidently one side
    assert (grown[decided] == truth[decided]).all()  # and never the wrong one
    assert (grown[marks != IGNORE] == marks[marks != IGNORE]).all()


def test_confidence_leaves_the_ambiguous_voxels_ignored() -> None:
    image, _, marks = _halves()
    noise = np.random.default_rng(1).normal(0, 5, image.shape).astype(np.float32)
    strict = grow_label(noise, marks, IGNORE, spacing=(1.0, 1.0), confidence=0.99)
    loose = grow_label(noise, marks, IGNORE, spacing=(1.0, 1.0), confidence=0.5)
    assert (strict == IGNORE).sum() > (loose == IGNORE).sum()
    assert strict[20, 19] == IGNORE  # midway between the two lines, no edge to decide
    blank = grow_label(np.zeros_like(image), marks, IGNORE, spacing=(1.0, 1.0))
    assert np.array_equal(blank, marks)  # a constant image has no edges to follow
    with pytest.raises(ValueError, match="confidence"):
        grow_label(image, marks, IGNORE, spacing=(1.0, 1.0), confidence=0.0)


def test_reach_keeps_a_class_near_its_own_marks() -> None:
    image, truth, marks = _halves()
    marks[marks == 1] = IGNORE
    marks[20, 31] = 1  # one click in the bright half
    free = grow_label(image, marks, IGNORE, spacing=(1.0, 1.0))
    near = grow_label(image, marks, IGNORE, spacing=(1.0, 2.0), reach_mm=6.0)
    ys, xs = np.nonzero(near == 1)
    assert ((ys - 20) ** 2 + (2 * (xs - 31)) ** 2 <= 36).all()  # within 6 mm, x voxels 2 mm
    assert (free == 1).sum() > (near == 1).sum() > 1
    assert (near[near != IGNORE] == truth[near != IGNORE]).all()


def test_one_marked_class_is_left_as_it_is() -> None:
    image, _, marks = _halves()
    marks[marks == 1] = 0
    assert np.array_equal(grow_label(image, marks, IGNORE, spacing=(1.0, 1.0)), marks)


def test_grown_dataset_keeps_geometry_and_ignore(phantom_dataset: Path, tmp_path: Path) -> None:
    sparse = make_sparse_dataset(
        phantom_dataset, tmp_path / "sparse", config=SparseConfig(every=4, stroke_classes=(2,))
    )
    out = grown_dataset(sparse, tmp_path / "grown")
    dataset = load_dataset(out)
    ignore = dataset.labels.ignore
    assert ignore == load_dataset(sparse).labels.ignore
    for index in range(3):
        marks = read_image(sparse / "labelsTr" / f"case_{index}.nii.gz")
        grown = read_image(out / "labelsTr" / f"case_{index}.nii.gz")
        assert grown.same_geometry(marks)
        marked = marks.array != ignore
        assert (grown.array[marked] == marks.array[marked]).all()
        truth = phantom_label(shift=index)[None]
        decided = grown.array != ignore
        assert decided.sum() > 2 * marked.sum()  # it grew
        assert (grown.array[decided] == truth[decided]).mean() > 0.97  # into the right classes
    with pytest.raises(DatasetError, match="no ignore label"):
        grown_dataset(phantom_dataset, tmp_path / "again")


def test_unknown_label_values_are_a_clear_error(phantom_dataset: Path, tmp_path: Path) -> None:
    sparse = make_sparse_dataset(phantom_dataset, tmp_path / "sparse")
    write_stray_value(sparse / "labelsTr" / "case_1.nii.gz")
    with pytest.raises(DatasetError, match=r"case_1.nii.gz: label values \[7\]"):
        grown_dataset(sparse, tmp_path / "grown")
