"""Weak-label loss terms: entropy on unlabelled voxels, the box prior and absence, on hand cases."""

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
    AbsenceTerm,
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


def _absence_case(shape=(1, 1, 10, 12, 12)):
    """A patch with ignore everywhere, one lesion mark (class 2) and a few marked voxels of 1."""
    target = torch.full(shape, IGNORE, dtype=torch.long)
    target[0, 0, 5, 6, 6] = 2
    target[0, 0, 2, 2, 2] = 1
    target[0, 0, 8, 9, 3] = 0
    logits = torch.randn(shape[0], 3, *shape[2:], generator=torch.Generator().manual_seed(4))
    return logits, target


def test_absence_counts_unmarked_voxels_beyond_reach_and_inside_the_patch() -> None:
    logits, target = _absence_case()
    spacing, reach_mm = (2.0, 1.0, 1.0), 2.0  # reach (1, 2, 2) voxels
    term = AbsenceTerm(marked={2: reach_mm}, spacing=spacing, ignore_label=IGNORE)
    label = target[0, 0].numpy()
    zz, yy, xx = np.indices(label.shape)
    far = (np.abs(zz - 5) > 1) | (np.abs(yy - 6) > 2) | (np.abs(xx - 6) > 2)
    interior = (zz >= 1) & (zz < 9) & (yy >= 2) & (yy < 10) & (xx >= 2) & (xx < 10)
    expected = (label == IGNORE) & far & interior
    counted = term.counted(target, 2)[0].numpy()
    np.testing.assert_array_equal(counted, expected)
    # every voxel within 2 mm (Euclidean) of the mark is left out
    distance = np.sqrt(((zz - 5) * 2.0) ** 2 + (yy - 6) ** 2 + (xx - 6) ** 2)
    assert not counted[distance <= reach_mm].any()
    p = torch.softmax(logits.double(), 1)[0, 2].numpy()
    assert float(term(logits, target)) == pytest.approx(-np.log1p(-p[expected]).mean(), rel=1e-5)


def test_absence_gradient_only_on_counted_voxels_and_zero_once_absent() -> None:
    logits, target = _absence_case()
    logits.requires_grad_(True)
    term = make_term(
        "absence",
        ignore_label=IGNORE,
        every_object_marked={2: 2.0},
        spacing=(2.0, 1.0, 1.0),
    )
    term(logits, target).backward()
    grad = logits.grad.abs().sum(1)[0]
    counted = term.counted(target, 2)[0]
    assert torch.all(grad[~counted] == 0)
    assert torch.all(grad[counted] > 0)
    absent = torch.zeros_like(logits)
    absent[:, 2] = -30.0  # lesion probability ~ 1e-13 everywhere
    assert float(term(absent, target)) < 1e-10
    uniform = torch.zeros_like(logits)
    assert float(term(uniform, target)) == pytest.approx(-math.log(2 / 3), rel=1e-6)


def test_absence_in_2d_and_without_counted_voxels() -> None:
    target = torch.full((2, 1, 9, 9), IGNORE, dtype=torch.long)
    target[0, 0, 4, 4] = 2
    target[1] = 1  # every voxel marked: nothing counted in this sample
    logits = torch.zeros(2, 3, 9, 9)
    term = AbsenceTerm(marked={2: 1.0}, spacing=(1.0, 1.0), ignore_label=IGNORE)
    counted = term.counted(target, 2)
    assert counted[1].sum() == 0
    assert int(counted[0].sum()) == 7 * 7 - 9  # interior 7 x 7 minus the mark's 3 x 3
    only_marked = torch.ones_like(target)
    assert float(term(logits, only_marked)) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"marked": {2: 1.0}, "ignore_label": None}, "ignore label"),
        ({"marked": {}, "ignore_label": IGNORE}, "every_object_marked"),
        ({"marked": {2: 1.0}, "ignore_label": IGNORE, "regions": ((1, 2),)}, "softmax"),
    ],
)
def test_absence_refuses_what_it_cannot_train(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        AbsenceTerm(spacing=(1.0, 1.0), **kwargs)


def test_absence_scores_only_full_resolution_targets_under_deep_supervision() -> None:
    logits, target = _absence_case()
    term = AbsenceTerm(
        marked={2: 2.0}, spacing=(2.0, 1.0, 1.0), ignore_label=IGNORE, patch_size=(10, 12, 12)
    )
    assert float(term(logits, target)) > 0
    half = target[:, :, ::2, ::2, ::2]  # nearest downsampling drops the lesion mark
    assert not (half == 2).any()
    assert float(term(logits[:, :, ::2, ::2, ::2], half)) == 0.0
