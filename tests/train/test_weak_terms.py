"""Weak-label loss terms: entropy on unlabelled voxels and the box prior, on hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from medseg.errors import ConfigError
from medseg.train.losses import make_loss_term as make_term
from medseg.train.weak_terms import (
    BOX_FILL,
    BoxPriorTerm,
    EntropyTerm,
    tightness_lines,
    voxel_entropy,
)

IGNORE = 3


def _logits_of(probs: np.ndarray) -> torch.Tensor:
    """Logits whose softmax over axis 1 is ``probs`` (rows summing to 1)."""
    return torch.log(torch.as_tensor(probs, dtype=torch.float64)).float()


def test_entropy_of_known_distributions_matches_scipy() -> None:
    probs = np.array([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3], [0.9, 0.05, 0.05]])
    logits = _logits_of(probs.T[None, :, :, None])  # (1, 3, 3, 1)
    got = voxel_entropy(logits)[0, :, 0].numpy()
    assert np.allclose(got, [scipy_entropy(p) for p in probs], atol=1e-6)
    assert got[0] == pytest.approx(1.5 * math.log(2), abs=1e-6)
    assert got[1] == pytest.approx(math.log(3), abs=1e-6)


def test_entropy_term_averages_only_over_ignored_voxels() -> None:
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    target = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    target[0, 0, :2] = IGNORE
    target[1, 0, 3, 3] = IGNORE
    ignored = (target[:, 0] == IGNORE).numpy()
    probs = torch.softmax(logits, 1).numpy()
    voxels = np.argwhere(ignored)
    expected = np.mean([scipy_entropy(probs[b, :, y, x]) for b, y, x in voxels])
    term = EntropyTerm(ignore_label=IGNORE)
    assert float(term(logits, target)) == pytest.approx(expected, rel=1e-5)


def test_entropy_gradient_is_zero_on_labelled_voxels_only() -> None:
    logits = torch.randn(1, 3, 5, 5, generator=torch.Generator().manual_seed(1), requires_grad=True)
    target = torch.randint(0, 3, (1, 1, 5, 5), generator=torch.Generator().manual_seed(2))
    target[0, 0, 1:3, 1:4] = IGNORE
    make_term("entropy", ignore_label=IGNORE)(logits, target).backward()
    grad = logits.grad.abs().sum(1)[0]
    ignored = target[0, 0] == IGNORE
    assert torch.all(grad[~ignored] == 0)
    assert torch.all(grad[ignored] > 0)


def test_entropy_without_ignored_voxels_is_zero_with_zero_gradient() -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    value = EntropyTerm(ignore_label=IGNORE)(logits, torch.zeros(1, 1, 4, 4, dtype=torch.long))
    value.backward()
    assert float(value.detach()) == 0.0
    assert torch.all(logits.grad == 0)


def test_entropy_in_region_mode_is_the_mean_binary_entropy() -> None:
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.full((1, 1, 2, 2), IGNORE)
    term = EntropyTerm(regions=((1, 2), (2,)), ignore_label=IGNORE)
    assert float(term(logits, target)) == pytest.approx(math.log(2), abs=1e-6)


def test_entropy_needs_an_ignore_label() -> None:
    with pytest.raises(ConfigError, match="ignore"):
        make_term("entropy")


def _box_case(inside_p: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """A 5x5 patch (1 sample) with a 3x3 box of class 1 at [1:4, 1:4]; p_1 given inside it."""
    target = torch.zeros(1, 1, 5, 5, dtype=torch.long)
    target[0, 0, 1:4, 1:4] = 1
    p1 = np.full((5, 5), 0.1)
    p1[1:4, 1:4] = inside_p
    probs = np.stack([1 - p1, p1])[None]
    return _logits_of(probs), target


def test_tightness_lines_sum_each_row_and_column_of_a_box() -> None:
    inside = np.arange(9, dtype=float).reshape(3, 3) / 100
    logits, target = _box_case(inside)
    probs = torch.softmax(logits, 1)[:, 1]
    label = target[:, 0]
    sums = tightness_lines(probs, label == 1, label == 0).numpy()
    expected = np.concatenate([inside.sum(axis=0), inside.sum(axis=1)])  # axis 1 (columns) first
    assert np.allclose(sums, expected, atol=1e-6)


def test_tightness_is_zero_when_every_line_is_covered_and_positive_otherwise() -> None:
    term = BoxPriorTerm()
    diagonal = np.eye(3) * 0.98 + 0.01  # one voxel per line: every line covered
    covered, target = _box_case(diagonal)
    parts = term.parts(covered, target)
    assert float(parts["tightness"]) == 0.0
    assert float(parts["emptiness"]) == pytest.approx(-math.log(0.9), abs=1e-6)
    fill = diagonal.mean()  # 3.03 / 9 of the box is class 1: below BOX_FILL
    assert float(parts["size"]) == pytest.approx(BOX_FILL - fill, abs=1e-6)
    assert float(term(covered, target)) == pytest.approx(sum(map(float, parts.values())))
    one_missing = diagonal.copy()
    one_missing[1, 1] = 0.01  # row 1 and column 1 now sum to 0.03
    parts = term.parts(_box_case(one_missing)[0], target)
    assert float(parts["tightness"]) == pytest.approx(2 / 6 * (1 - 0.03), abs=1e-6)
    assert float(parts["size"]) == pytest.approx(BOX_FILL - one_missing.mean(), abs=1e-6)
    full = term.parts(_box_case(np.full((3, 3), 0.6))[0], target)
    assert float(full["tightness"]) == float(full["size"]) == 0.0


def test_lines_cut_by_the_border_or_ending_in_another_box_are_not_counted() -> None:
    target = torch.zeros(1, 1, 5, 6, dtype=torch.long)
    target[0, 0, 0:3, 1:4] = 1  # touches the top border: columns are cut, rows count
    target[0, 0, 1, 4] = 2  # a box of class 2 right of row 1: that row is not counted
    label = target[:, 0]
    probs = torch.full((1, 5, 6), 0.2)
    sums = tightness_lines(probs, label == 1, label == 0)
    assert sums.numel() == 2  # rows 0 and 2 (3 voxels each), no column
    assert torch.allclose(sums, torch.full((2,), 0.6))


def test_box_prior_gradient_is_zero_on_ignored_voxels_and_satisfied_boxes() -> None:
    target = torch.zeros(1, 1, 5, 5, dtype=torch.long)
    target[0, 0, 1:4, 1:4] = 1
    target[0, 0, 4, :] = IGNORE
    p1 = np.full((5, 5), 0.1)
    p1[1:4, 1:4] = 0.6  # every line sums to 1.8 and the box is 60 % class 1: satisfied
    logits = _logits_of(np.stack([1 - p1, p1])[None]).requires_grad_(True)
    BoxPriorTerm(ignore_label=IGNORE)(logits, target).backward()
    grad = logits.grad.abs().sum(1)[0]
    assert torch.all(grad[4] == 0)
    assert torch.all(grad[1:4, 1:4] == 0)
    assert torch.all(grad[0] > 0)  # background voxels: the emptiness term


def test_box_prior_refuses_regions() -> None:
    with pytest.raises(ConfigError, match="softmax"):
        make_term("box_prior", regions=((1,),))
