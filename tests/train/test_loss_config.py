"""Choosing losses from the plan: overrides, validation errors, deep supervision, a training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.errors import ConfigError
from medseg.plan import apply_overrides, parse_assignment
from medseg.train.loss_terms import CombinedLoss, ContainmentTerm, NaclTerm
from medseg.train.losses import DeepSupervisionLoss, SegmentationLoss, build_loss
from medseg.train.model_folder import save_model_folder
from medseg.train.trainer import train_fold

NESTED = {"whole": (1, 2), "core": (2,)}


def test_cli_assignment_selects_main_and_extra_losses(tiny_plan) -> None:
    plan = apply_overrides(
        tiny_plan(),
        dict(
            [
                parse_assignment("training.loss=focal"),
                parse_assignment('training.extra_losses={"nacl": 0.1, "cldice": 0.5}'),
            ]
        ),
    )
    training = plan.configuration().training
    assert training.loss == "focal"
    assert training.extra_losses == {"nacl": 0.1, "cldice": 0.5}
    loss = build_loss(plan, plan.configuration())
    assert isinstance(loss.loss, CombinedLoss)
    assert loss.loss.names == ["focal", "cldice", "nacl"]
    assert loss.loss.weights == [1.0, 0.5, 0.1]
    default = build_loss(tiny_plan(), tiny_plan().configuration())
    assert isinstance(default.loss, SegmentationLoss)


@pytest.mark.parametrize(
    ("overrides", "regions", "message"),
    [
        ({"training.loss": "hausdorff"}, None, "'hausdorff' is not one of"),
        ({"training.extra_losses": {"betti": 1.0}}, None, "unknown loss 'betti'"),
        ({"training.extra_losses": {"nacl": 0.0}}, None, "weight must be > 0"),
        ({"training.extra_losses": {"nacl": 0.1}}, NESTED, "nacl needs softmax"),
        ({"training.extra_losses": {"topk_ce": 1.0}}, NESTED, "topk_ce needs softmax"),
        ({"training.loss": "topk_ce"}, NESTED, "topk_ce needs softmax"),
        ({"training.loss": "box_prior"}, NESTED, "box_prior needs softmax"),
        ({"training.extra_losses": {"entropy": 0.1}}, None, "entropy acts on voxels with the"),
        ({"training.extra_losses": {"containment": 1.0}}, None, "regions nested"),
        (
            {"training.extra_losses": {"containment": 1.0}},
            {"one": (1,), "two": (2,)},
            "regions nested",
        ),
    ],
)
def test_unknown_or_unfitting_losses_are_refused(tiny_plan, overrides, regions, message) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(tiny_plan(regions=regions), overrides)


def test_extra_terms_work_under_deep_supervision_with_ignore(tiny_plan) -> None:
    plan = apply_overrides(
        tiny_plan(regions=NESTED, ignore=3),
        {"training.extra_losses": {"containment": 1.0, "boundary": 0.01, "connectivity": 0.5}},
    )
    loss = build_loss(plan, plan.configuration())
    assert isinstance(loss, DeepSupervisionLoss)
    assert loss.loss.names == ["dice_ce", "boundary", "connectivity", "containment"]
    assert isinstance(loss.loss.terms[3], ContainmentTerm)
    assert loss.loss.regions == ((1, 2), (2,))
    assert loss.loss.ignore_label == 3
    label = torch.randint(0, 4, (2, 1, 8, 8, 8), generator=torch.Generator().manual_seed(0))
    outputs = [torch.randn(2, 2, *[8 // 2**i] * 3, requires_grad=True) for i in range(3)]
    value = loss(outputs, label)
    value.backward()
    assert torch.isfinite(value)
    assert outputs[1].grad is not None
    assert outputs[1].grad.abs().sum() > 0  # the half-resolution output is scored too
    assert outputs[2].grad is None  # the lowest gets weight 0, as in nnU-Net


def _train_seeing_loss(tmp_path: Path, source, plan):
    """Train fold 0 of ``plan`` for its epochs; the result and the loss the trainer built."""
    save_model_folder(tmp_path, plan, configuration=plan.default_configuration)
    ids = list(source.case_ids)
    seen = []
    result = train_fold(
        source,
        plan,
        plan.default_configuration,
        tmp_path,
        0,
        train_ids=ids[:3],
        val_ids=ids[3:],
        device="cpu",
        seed=3,
        wrap_loss=lambda loss, config: seen.append(loss) or loss,
    )
    return result, seen[0]


@pytest.mark.parametrize(
    ("regions", "extra"),
    [
        (None, {"nacl": 0.1, "cldice": 0.5, "boundary": 0.01, "tversky": 1.0}),
        (NESTED, {"containment": 1.0, "connectivity": 0.5, "focal": 1.0}),
    ],
)
def test_a_fold_trains_with_extra_losses(tmp_path: Path, source, tiny_plan, regions, extra):
    plan = apply_overrides(tiny_plan(epochs=1, regions=regions), {"training.extra_losses": extra})
    result, loss = _train_seeing_loss(tmp_path, source, plan)
    assert np.isfinite(result.train_loss)
    expected = NaclTerm if regions is None else ContainmentTerm
    assert any(isinstance(t, expected) for t in loss.loss.terms)


def test_box_prior_and_entropy_train_a_fold(tmp_path: Path, source, tiny_plan) -> None:
    from medseg.train.weak_terms import BoxPriorTerm, EntropyTerm

    plan = apply_overrides(
        tiny_plan(epochs=1, ignore=3),
        {"training.loss": "box_prior", "training.extra_losses": {"entropy": 0.1}},
    )
    result, loss = _train_seeing_loss(tmp_path, source, plan)
    assert np.isfinite(result.train_loss)
    assert loss.loss.names == ["box_prior", "entropy"]
    assert isinstance(loss.loss.terms[0], BoxPriorTerm)
    assert isinstance(loss.loss.terms[1], EntropyTerm)


def test_absence_and_entropy_train_a_fold(tmp_path: Path, source, tiny_plan) -> None:
    import dataclasses

    from medseg.train.marginal import partial_loss
    from medseg.train.weak_terms import AbsenceTerm

    marked = dataclasses.replace(tiny_plan(epochs=1, ignore=3), every_object_marked={2: 2.0})
    plan = apply_overrides(marked, {"training.extra_losses": {"entropy": 0.1, "absence": 1.0}})
    result, loss = _train_seeing_loss(tmp_path, source, plan)
    assert np.isfinite(result.train_loss)
    assert loss.loss.names == ["dice_ce", "absence", "entropy"]
    term = loss.loss.terms[1]
    assert isinstance(term, AbsenceTerm)
    spacing = plan.configuration().spacing
    assert term.reach_voxels == {2: tuple(int(np.ceil(2.0 / s)) for s in spacing)}
    with pytest.raises(ConfigError, match="absence term would call the unlabelled"):
        partial_loss(plan, plan.configuration(), batch_dice=False)
