"""Dice + CE / region losses against MONAI and torch references; deep-supervision weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss

from medseg.train.losses import (
    DeepSupervisionLoss,
    SegmentationLoss,
    deep_supervision_weights,
    labels_to_regions,
    region_channels,
)


def _labels(shape=(2, 1, 8, 8, 8), classes=3, seed=0) -> torch.Tensor:
    return torch.randint(0, classes, shape, generator=torch.Generator().manual_seed(seed))


def _perfect_logits(label: torch.Tensor, classes: int) -> torch.Tensor:
    return F.one_hot(label[:, 0].long(), classes).movedim(-1, 1).float() * 40 - 20


def test_matches_monai_dice_ce_without_ignore() -> None:
    label = _labels()
    logits = torch.randn(2, 3, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    reference = DiceCELoss(
        include_background=False, to_onehot_y=True, softmax=True, smooth_nr=1e-5, smooth_dr=1e-5
    )(logits, label)
    torch.testing.assert_close(SegmentationLoss()(logits, label), reference)


def test_perfect_prediction_gives_near_zero_loss() -> None:
    label = _labels()
    assert SegmentationLoss()(_perfect_logits(label, 3), label) < 1e-4
    regions = [(1, 2), (2,)]
    logits = labels_to_regions(label, regions) * 40 - 20
    assert SegmentationLoss(regions=regions)(logits, label) < 1e-4


def test_ignore_label_is_excluded_from_both_terms() -> None:
    label = _labels()
    logits = _perfect_logits(label, 3)
    label_with_ignore = label.clone()
    label_with_ignore[:, :, :4] = 3  # ignore the first half; logits there now disagree
    loss = SegmentationLoss(ignore_label=3)
    assert loss(logits, label_with_ignore) < 1e-4
    wrong = logits.clone()
    wrong[:, :, 4:] = -wrong[:, :, 4:]  # wrong where labels are valid
    assert loss(wrong, label_with_ignore) > 1.0
    regions = SegmentationLoss(regions=[(1, 2)], ignore_label=3)
    region_logits = labels_to_regions(label, [(1, 2)]) * 40 - 20
    assert regions(region_logits, label_with_ignore) < 1e-4
    everything_ignored = torch.full_like(label, 3)
    assert loss(logits, everything_ignored) == 0


def test_class_weights_reach_cross_entropy() -> None:
    label = _labels()
    logits = torch.randn(2, 3, 8, 8, 8, generator=torch.Generator().manual_seed(2))
    weights = (0.5, 1.0, 4.0)
    expected = DiceLoss(
        include_background=False, to_onehot_y=True, softmax=True, smooth_nr=1e-5, smooth_dr=1e-5
    )(logits, label) + F.cross_entropy(logits, label[:, 0].long(), weight=torch.tensor(weights))
    torch.testing.assert_close(SegmentationLoss(class_weights=weights)(logits, label), expected)


def test_region_loss_is_bce_plus_dice() -> None:
    label = _labels()
    regions = [(1, 2), (2,)]
    logits = torch.randn(2, 2, 8, 8, 8, generator=torch.Generator().manual_seed(3))
    masks = labels_to_regions(label, regions)
    expected = F.binary_cross_entropy_with_logits(logits, masks) + DiceLoss(
        sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5
    )(logits, masks)
    torch.testing.assert_close(SegmentationLoss(regions=regions)(logits, label), expected)


def test_labels_to_regions_and_channel_order() -> None:
    label = torch.tensor([0, 1, 2, 3]).view(1, 1, 4)
    masks = labels_to_regions(label, [(1, 2, 3), (2, 3), (3,)])
    assert masks[0].tolist() == [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]]
    brats = {"enhancing_tumor": (3,), "tumor_core": (2, 3), "whole_tumor": (1, 2, 3)}
    assert [n for n, _ in region_channels(brats)] == [
        "whole_tumor",
        "tumor_core",
        "enhancing_tumor",
    ]


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, [1.0]), (2, [1.0, 0.0]), (3, [2 / 3, 1 / 3, 0.0]), (4, [4 / 7, 2 / 7, 1 / 7, 0.0])],
)
def test_deep_supervision_weights(n: int, expected: list[float]) -> None:
    assert deep_supervision_weights(n) == pytest.approx(expected)


def test_deep_supervision_downsamples_labels_by_nearest() -> None:
    label = _labels(shape=(1, 1, 8, 8, 8))
    full = torch.randn(1, 3, 8, 8, 8, generator=torch.Generator().manual_seed(4))
    half = torch.randn(1, 3, 4, 4, 4, generator=torch.Generator().manual_seed(5))
    base = SegmentationLoss()
    loss = DeepSupervisionLoss(base, weights=[0.6, 0.4])([full, half], label)
    expected = 0.6 * base(full, label) + 0.4 * base(half, label[..., ::2, ::2, ::2])
    torch.testing.assert_close(loss, expected)
    lowest_ignored = DeepSupervisionLoss(base)([full, half], label)  # weights [1, 0]
    torch.testing.assert_close(lowest_ignored, base(full, label))
