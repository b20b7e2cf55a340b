"""Soft rater targets: vote fractions, the soft Dice + CE loss, batches, a training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_rater_sampling import FAST, _add_raters

from medseg.errors import ConfigError
from medseg.plan import apply_overrides
from medseg.train import train_model
from medseg.train.augment import augment_batch, training_transform
from medseg.train.loader import BatchStream
from medseg.train.losses import SegmentationLoss, build_loss
from medseg.train.sampling import PatchSampler
from medseg.train.soft_targets import SoftTargetLoss, one_hot_target, rater_soft_target
from medseg.weak.correction import correction_wrapper

IGNORE = 3


def test_vote_fractions_on_a_hand_case() -> None:
    raters = [np.array([[0, 1, 2, 3]]), np.array([[0, 1, 1, 3]]), np.array([[1, 1, 2, 3]])]
    soft = rater_soft_target(raters, 3, ignore_label=IGNORE)
    expected = np.array(
        [
            [2 / 3, 0, 0, 0],  # class 0
            [1 / 3, 1, 1 / 3, 0],  # class 1
            [0, 0, 2 / 3, 0],  # class 2; the last voxel: every rater ignores it
        ]
    )
    np.testing.assert_allclose(soft, expected, atol=1e-6)
    partly = rater_soft_target([np.array([[1, 3]]), np.array([[2, 2]])], 3, ignore_label=IGNORE)
    np.testing.assert_allclose(partly, [[0, 0], [0.5, 0], [0.5, 1]])  # ignore does not vote


def _case(seed: int = 0, ignore: bool = True):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 6, 6, 6, generator=generator)
    label = torch.randint(0, 4 if ignore else 3, (2, 1, 6, 6, 6), generator=generator)
    return logits, label


def test_soft_ce_with_one_hot_targets_equals_torch_cross_entropy() -> None:
    logits, label = _case()
    weights = (1.0, 2.0, 5.0)
    target = one_hot_target(label, 3, IGNORE)
    loss = SoftTargetLoss(class_weights=weights)
    ce = loss(logits, target) - loss.dice(torch.softmax(logits, 1) * target.sum(1, True), target)
    hard = label[:, 0].masked_fill(label[:, 0] == IGNORE, -100)
    expected = F.cross_entropy(logits, hard, weight=torch.tensor(weights), ignore_index=-100)
    torch.testing.assert_close(ce, expected)


def test_soft_ce_matches_torch_probability_targets() -> None:
    logits, _ = _case()
    target = torch.softmax(torch.randn_like(logits), dim=1)
    loss = SoftTargetLoss()
    ce = loss(logits, target) - loss.dice(torch.softmax(logits, 1), target)
    torch.testing.assert_close(ce, F.cross_entropy(logits, target))


@pytest.mark.parametrize("batch_dice", [False, True])
def test_label_maps_give_the_hard_loss(batch_dice: bool) -> None:
    logits, label = _case(1)
    options = {"ignore_label": IGNORE, "class_weights": (1.0, 3.0, 2.0), "batch_dice": batch_dice}
    soft = SoftTargetLoss(**options)
    torch.testing.assert_close(soft(logits, label), SegmentationLoss(**options)(logits, label))
    torch.testing.assert_close(soft(logits, one_hot_target(label, 3, IGNORE)), soft(logits, label))


def test_voxels_without_votes_get_no_gradient() -> None:
    logits, label = _case(2)
    target = one_hot_target(label, 3, IGNORE).mul(0.7).add(0.1)  # rows sum to 1
    target[:, :, :2] = 0  # no rater voted on the first two slices
    logits.requires_grad_(True)
    SoftTargetLoss()(logits, target).backward()
    assert torch.all(logits.grad[:, :, :2] == 0)
    assert torch.all(logits.grad[:, :, 2:].abs().sum(1) > 0)
    nothing = torch.zeros_like(target)
    assert float(SoftTargetLoss()(logits, nothing).detach()) == 0.0
    with pytest.raises(ValueError, match="soft target of shape"):
        SoftTargetLoss()(logits, target[:, :2])


def _disagreeing_raters(source):
    label = source.cases["case0"][1]
    ball, core = np.where(label > 0, 1, 0), np.where(label > 0, 2, 0)
    return label, {"case0": [ball.astype(np.int16), core.astype(np.int16)]}


def test_soft_batches_are_cut_at_the_image_patch(source) -> None:
    _, raters = _disagreeing_raters(source)
    common = dict(foreground_labels=(1, 2), num_classes=3)
    soft = PatchSampler(
        source, ["case0"], (8, 8, 8), 2, 0.5, raters=raters, soft_targets=True, **common
    )
    plain = PatchSampler(source, ["case0"], (8, 8, 8), 2, 0.5, **common)
    for seed in range(5):
        batch = soft.sample(np.random.default_rng(seed))
        same = plain.sample(np.random.default_rng(seed))
        np.testing.assert_array_equal(batch.image, same.image)  # same windows
        np.testing.assert_array_equal(batch.label, same.label)
        inside = batch.label[:, 0] > 0
        np.testing.assert_allclose(batch.soft[:, 1][inside], 0.5)  # the raters split 1 / 2
        np.testing.assert_allclose(batch.soft[:, 2][inside], 0.5)
        np.testing.assert_allclose(batch.soft[:, 0][~inside], 1.0)
    own = PatchSampler(source, ["case1"], (8, 8, 8), 2, 0.5, soft_targets=True, **common)
    batch = own.sample(np.random.default_rng(0))  # no raters: the one-hot of the label
    np.testing.assert_array_equal(
        batch.soft, one_hot_target(torch.from_numpy(batch.label), 3).numpy()
    )


def test_streams_and_augmentation_carry_float_targets(source) -> None:
    _, raters = _disagreeing_raters(source)
    sampler = PatchSampler(
        source,
        ["case0"],
        (8, 8, 8),
        2,
        1.0,
        foreground_labels=(1, 2),
        num_classes=3,
        raters=raters,
        soft_targets=True,
    )
    _, target = BatchStream(sampler, None, seed=0).batch(0)
    assert target.dtype == torch.float32
    assert target.shape == (2, 3, 8, 8, 8)
    batch = sampler.sample(np.random.default_rng(3))
    flipped = training_transform(3, augment=True, mirror_axes=(0, 1, 2))
    _, moved = augment_batch(
        type(batch)(image=batch.image, label=batch.soft, forced=batch.forced), flipped, seed=1
    )
    assert moved.dtype == torch.float32
    assert set(np.unique(moved.numpy()).round(6)) <= {0.0, 0.5, 1.0}  # nearest neighbour


def test_plan_and_loss_refuse_unfitting_combinations(tiny_plan) -> None:
    plan = tiny_plan()
    for overrides, message in [
        ({"training.rater_sampling": True}, "exclude each other"),
        ({"training.loss": "focal"}, "soft Dice"),
        ({"training.extra_losses": {"cldice": 0.5}}, "soft Dice"),
    ]:
        with pytest.raises(ConfigError, match=message):
            apply_overrides(plan, {"training.rater_soft_targets": True, **overrides})
    with pytest.raises(ConfigError, match="not regions"):
        apply_overrides(
            tiny_plan(regions={"whole": (1, 2), "core": (2,)}),
            {"training.rater_soft_targets": True},
        )
    with pytest.raises(ConfigError, match="partially labelled"):
        build_loss(plan, plan.configuration(), partial=True, soft=True)
    soft_loss = build_loss(plan, plan.configuration(), soft=True)
    with pytest.raises(ConfigError, match="soft rater targets"):
        correction_wrapper()(soft_loss, plan.configuration())


def test_train_model_on_soft_rater_targets(tmp_path: Path, raw_dataset: Path) -> None:
    _add_raters(raw_dataset)
    seen = []
    result = train_model(
        raw_dataset,
        tmp_path / "model",
        epochs=1,
        device="cpu",
        num_workers=0,
        overrides={**FAST, "training.rater_soft_targets": True},
        wrap_loss=lambda loss, config: seen.append(loss) or loss,
    )
    assert np.isfinite(result.folds[0].train_loss)
    assert isinstance(seen[0].loss, SoftTargetLoss)


@pytest.mark.parametrize(("plane", "neighbours"), [(0, 0), (1, 0), (2, 1)])
def test_planar_soft_targets_follow_the_label_slice(source, plane: int, neighbours: int) -> None:
    label = source.cases["case0"][1]
    raters = {"case0": [label.astype(np.int16), label.astype(np.int16)]}  # two identical raters
    sampler = PatchSampler(
        source,
        ["case0"],
        (8, 8),
        2,
        0.5,
        foreground_labels=(1, 2),
        num_classes=3,
        raters=raters,
        soft_targets=True,
        plane=plane,
        neighbours=neighbours,
    )
    for seed in range(3):
        batch = sampler.sample(np.random.default_rng(seed))
        expected = one_hot_target(torch.from_numpy(batch.label.astype(np.int64)), 3).numpy()
        np.testing.assert_array_equal(batch.soft, expected)
        assert batch.image.shape[1] == source.cases["case0"][0].shape[0] * (2 * neighbours + 1)
