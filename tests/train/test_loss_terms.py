"""Loss terms: hand-computed values, MONAI / SciPy references, ignore label, gradients, descent."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import BoundaryLoss, FocalLoss, NACLLoss
from scipy import ndimage

from medseg.errors import ConfigError
from medseg.plan import validate
from medseg.train.loss_terms import (
    TERMS,
    BoundaryTerm,
    CombinedLoss,
    NaclTerm,
    labels_to_regions,
    make_term,
)
from medseg.train.losses import SegmentationLoss

REGIONS = ((1, 2), (2,))


def _labels(shape=(2, 1, 8, 8), classes=3, seed=0) -> torch.Tensor:
    return torch.randint(0, classes, shape, generator=torch.Generator().manual_seed(seed))


def _logits(shape=(2, 3, 8, 8), seed=1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _perfect(label: torch.Tensor, regions=()) -> torch.Tensor:
    if regions:
        return labels_to_regions(label, regions) * 40 - 20
    return F.one_hot(label[:, 0], 3).movedim(-1, 1).float() * 40 - 20


def _term(name: str, regions=(), **kwargs):
    return make_term(name, regions=regions, **kwargs)


SOFTMAX_TERMS = [n for n in TERMS if n != "containment"]
REGION_TERMS = [n for n in TERMS if n not in ("nacl", "topk_ce")]


def test_registry_matches_plan_validation() -> None:
    assert set(TERMS) == set(validate.EXTRA_LOSSES)


@pytest.mark.parametrize("name", ["ce", "dice", "focal", "tversky", "cldice", "connectivity"])
@pytest.mark.parametrize("regions", [(), REGIONS])
def test_perfect_prediction_gives_near_zero(name: str, regions) -> None:
    label = _labels()
    assert float(_term(name, regions)(_perfect(label, regions), label)) < 1e-3


def test_containment_is_zero_for_consistent_regions() -> None:
    label = _labels()
    assert float(_term("containment", REGIONS)(_perfect(label, REGIONS), label)) == 0.0


def test_focal_hand_value_and_monai() -> None:
    label = _labels(classes=2)
    zeros = torch.zeros(2, 2, 8, 8)  # p_t = 0.5 everywhere: (1 - 0.5)**2 * ln 2
    assert float(_term("focal")(zeros, label)) == pytest.approx(0.25 * math.log(2))
    logits = _logits()
    label = _labels()
    monai = FocalLoss(gamma=2.0, use_softmax=True, to_onehot_y=True)(logits, label)
    # MONAI averages over channels too; the softmax focal term sums them per voxel
    torch.testing.assert_close(_term("focal")(logits, label), 3 * monai)
    region_logits = _logits((2, 2, 8, 8))
    masks = labels_to_regions(label, REGIONS)
    monai = FocalLoss(gamma=2.0)(region_logits, masks)
    torch.testing.assert_close(_term("focal", REGIONS)(region_logits, label), monai)


def test_topk_ce_keeps_the_hardest_tenth_with_class_weights() -> None:
    label = torch.zeros(1, 1, 1, 10, dtype=torch.long)
    label[..., 3] = 1
    logits = torch.zeros(1, 2, 1, 10)  # CE ln 2 on nine voxels
    logits[0, 0, 0, 3] = 5.0  # the class-1 voxel is confidently wrong: CE ln(1 + e^5)
    hardest = math.log(1 + math.exp(5))
    assert float(_term("topk_ce")(logits, label)) == pytest.approx(hardest, rel=1e-5)
    weighted = _term("topk_ce", class_weights=(1.0, 3.0))
    assert float(weighted(logits, label)) == pytest.approx(3 * hardest, rel=1e-5)
    label[..., 3] = 2  # the ignore label: only ln 2 voxels are left
    ignoring = _term("topk_ce", ignore_label=2)
    assert float(ignoring(logits, label)) == pytest.approx(math.log(2), rel=1e-5)
    with pytest.raises(ConfigError, match="softmax"):
        _term("topk_ce", REGIONS)(_logits((2, 2, 8, 8)), _labels())


def test_topk_ce_equals_ce_when_every_voxel_is_equally_hard() -> None:
    label = _labels()
    logits = torch.zeros(2, 3, 8, 8)
    expected = F.cross_entropy(logits, label[:, 0])
    torch.testing.assert_close(_term("topk_ce")(logits, label), expected)


def test_tversky_hand_value() -> None:
    label = torch.tensor([[[[1, 1, 0, 0]]]])
    logits = torch.zeros(1, 1, 1, 4)  # p = 0.5: TP = 1, FP = 1, FN = 1
    expected = 1 - 1 / (1 + 0.3 * 1 + 0.7 * 1)
    assert float(_term("tversky", ((1,),))(logits, label)) == pytest.approx(expected, abs=1e-4)


def test_cldice_hand_value_on_a_line() -> None:
    label = torch.zeros(1, 1, 5, 5, dtype=torch.long)
    label[..., 2, :] = 1  # a one-voxel line is its own soft skeleton
    logits = torch.full((1, 1, 5, 5), -40.0)
    logits[..., 2, :] = 0.0  # p = 0.5 on the line
    precision = (0.5 * 5 + 1) / (0.5 * 5 + 1)  # MONAI's smoothing: +1 on both sides
    sensitivity = (0.5 * 5 + 1) / (5 + 1)
    expected = 1 - 2 * precision * sensitivity / (precision + sensitivity + 1e-4)
    assert float(_term("cldice", ((1,),))(logits, label)) == pytest.approx(expected, rel=1e-5)


def test_boundary_hand_value_and_minimum() -> None:
    label = torch.tensor([[[[0, 1, 1, 1, 1, 1, 0]]]])
    # signed distance: [1, 0, -1, -2, -1, 0, 1]
    term = _term("boundary", ((1,),))
    assert float(term(torch.zeros(1, 1, 1, 7), label)) == pytest.approx(0.5 * -2 / 7)
    assert float(term(_perfect(label, ((1,),)), label)) == pytest.approx(-4 / 7, abs=1e-6)


def test_boundary_matches_monai_and_scipy_anisotropic() -> None:
    label = torch.zeros(1, 1, 12, 12, dtype=torch.long)
    label[..., 3:8, 2:9] = 1
    logits = _logits((1, 1, 12, 12))
    reference = BoundaryLoss(sigmoid=True)(logits, label.float())
    torch.testing.assert_close(_term("boundary", ((1,),))(logits, label), reference)
    mask = label[0, 0].numpy() > 0
    sampling = (3.0, 1.0)
    expected = np.where(
        mask,
        1 - ndimage.distance_transform_edt(mask, sampling=sampling),
        ndimage.distance_transform_edt(~mask, sampling=sampling),
    )
    term = BoundaryTerm(regions=((1,),), spacing=(1.5, 0.5), patch_size=(12, 12))
    np.testing.assert_allclose(term.signed_distance(label.float())[0, 0].numpy(), expected)
    half = term.signed_distance(label.float()[..., ::2, ::2])  # deep-supervision output
    coarse = label[0, 0, ::2, ::2].numpy() > 0
    np.testing.assert_allclose(
        half[0, 0].numpy(),
        np.where(
            coarse,
            1 - ndimage.distance_transform_edt(coarse, sampling=(6.0, 2.0)),
            ndimage.distance_transform_edt(~coarse, sampling=(6.0, 2.0)),
        ),
    )


def test_connectivity_hand_value() -> None:
    label = torch.ones(1, 1, 2, 2, dtype=torch.long)
    # p = 0.5 everywhere: every neighbour pair predicts 0.25 for a connected pair
    value = _term("connectivity", ((1,),))(torch.zeros(1, 1, 2, 2), label)
    assert float(value) == pytest.approx(math.log(4), rel=1e-5)
    split = torch.tensor([[[[1, 0]]]])
    logits = torch.tensor([[[[0.0, -40.0]]]])  # pair prediction 0.5 * 0 = 0 on a cut pair
    assert float(_term("connectivity", ((1,),))(logits, split)) < 1e-5


def test_nacl_hand_value_and_monai_neighbourhood() -> None:
    label = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    zeros = torch.zeros(1, 3, 4, 4)  # tau = (1, 0, 0) everywhere: mean |tau - 0| = 1/3
    assert float(_term("nacl")(zeros, label)) == pytest.approx(1 / 3)
    label = _labels((1, 1, 8, 8))
    tau = NaclTerm().neighbour_average(label, None, 3)
    monai = NACLLoss(classes=3, dim=2).get_constr_target(label[:, 0])
    torch.testing.assert_close(tau[..., 1:-1, 1:-1], monai[..., 1:-1, 1:-1])
    assert float(_term("nacl")(tau, label)) == pytest.approx(0.0, abs=1e-7)
    # the paper's loss, CE + 0.1 * penalty, as a combination
    logits = _logits((1, 3, 8, 8))
    combined = CombinedLoss([("ce", 1.0, _term("ce")), ("nacl", 0.1, _term("nacl"))])
    expected = F.cross_entropy(logits, label[:, 0]) + 0.1 * (tau - logits).abs().mean()
    torch.testing.assert_close(combined(logits, label), expected)


def test_containment_hand_value() -> None:
    label = torch.zeros(1, 1, 1, 2, dtype=torch.long)
    logits = torch.stack([torch.full((1, 2), 0.0), torch.full((1, 2), math.log(4))])[None]
    # outer (whole) p = 0.5, inner (core) p = 0.8: violation 0.3 per voxel
    assert float(_term("containment", REGIONS)(logits, label)) == pytest.approx(0.3)
    assert float(_term("containment", REGIONS)(logits.flip(1), label)) == 0.0


@pytest.mark.parametrize(
    ("name", "regions"),
    [(n, ()) for n in SOFTMAX_TERMS] + [(n, REGIONS) for n in REGION_TERMS],
)
def test_ignored_voxels_count_nowhere_and_gradients_reach_logits(name: str, regions) -> None:
    label = _labels()
    label[..., :3, :] = 3
    term = _term(name, regions, ignore_label=3)
    channels = len(regions) if regions else 3
    logits = _logits((2, channels, 8, 8)).requires_grad_()
    value = term(logits, label)
    value.backward()
    assert torch.isfinite(value)
    assert logits.grad is not None
    assert logits.grad[..., 3:, :].abs().sum() > 0
    assert logits.grad[..., :3, :].abs().sum() == 0  # ignored voxels get no gradient
    changed = logits.detach().clone()
    changed[..., :3, :] = 7.0
    torch.testing.assert_close(term(changed, label), value.detach())
    assert float(term(logits.detach(), torch.full_like(label, 3))) == 0.0


@pytest.mark.parametrize(
    ("name", "regions"),
    [(n, ()) for n in SOFTMAX_TERMS] + [(n, REGIONS) for n in REGION_TERMS],
)
def test_adam_steps_decrease_each_term(name: str, regions) -> None:
    label = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    label[..., 2:6, 1:7] = 1
    label[..., 3:5, 3:5] = 2
    channels = len(regions) if regions else 3
    logits = _logits((1, channels, 8, 8), seed=3)
    if name == "containment":
        logits[:, 1] += 3  # start with the core outside the whole tumour
    logits.requires_grad_()
    term = _term(name, regions)
    optimizer = torch.optim.Adam([logits], lr=0.1)
    start = float(term(logits.detach(), label))
    for _ in range(30):
        optimizer.zero_grad()
        loss = term(logits, label)
        loss.backward()
        optimizer.step()
    end = float(term(logits.detach(), label))
    assert end < start - 0.25 * abs(start) - 1e-3


def test_unknown_names_and_mode_mismatches_raise() -> None:
    with pytest.raises(ConfigError, match="unknown loss term 'hausdorff'"):
        make_term("hausdorff")
    with pytest.raises(ConfigError, match="nacl penalty needs softmax"):
        make_term("nacl", regions=REGIONS)
    with pytest.raises(ConfigError, match="regions nested"):
        make_term("containment", regions=((1,), (2,)))
    with pytest.raises(ConfigError, match="finite weights"):
        CombinedLoss([("ce", 0.0, make_term("ce"))])


def test_containment_keeps_nested_regions_nested_on_a_toy_set() -> None:
    label = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    label[:, :, 1:7, 1:7] = 1
    label[:, :, 3:5, 3:5] = 2  # the core inside the whole
    start = _logits((2, 2, 8, 8), seed=5)
    start[:, 1] = start[:, 0] + 2  # the core predicted wherever the whole is, and beyond

    def violation_after(loss) -> float:
        logits = start.clone().requires_grad_()
        optimizer = torch.optim.Adam([logits], lr=0.05)
        for _ in range(15):
            optimizer.zero_grad()
            loss(logits, label).backward()
            optimizer.step()
        probs = torch.sigmoid(logits.detach())
        return float(torch.relu(probs[:, 1] - probs[:, 0]).mean())

    plain = SegmentationLoss(regions=REGIONS)
    nested = CombinedLoss(
        [("dice_bce", 1.0, plain), ("containment", 5.0, _term("containment", REGIONS))]
    )
    assert violation_after(nested) < 0.5 * violation_after(plain)
