"""Marginal loss in training: partially labelled and unlabelled samples, batches, train_model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from medseg.errors import ConfigError
from medseg.train import train_model
from medseg.train.loader import BatchStream
from medseg.train.losses import DeepSupervisionLoss, build_loss
from medseg.train.marginal import MarginalLoss, annotated_mask
from medseg.train.sampling import PatchSampler, annotated_rows

FAST = {"num_folds": 2, "training.iterations_per_epoch": 2, "training.val_iterations": 1}


def _reference(logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
    """Marginal Dice + CE written out voxel by voxel from the softmax (no log-sum-exp)."""
    probs = torch.softmax(logits.double(), dim=1)
    ce_terms, dice_terms = [], []
    for b in range(len(logits)):
        if not annotated[b].any():
            continue
        missing = [c for c in range(1, logits.shape[1]) if not annotated[b, c]]
        merged = probs[b, 0] + sum((probs[b, c] for c in missing), torch.zeros_like(probs[b, 0]))
        label = target[b, 0]
        picked = torch.where(label == 0, merged, probs[b].gather(0, label[None])[0])
        ce_terms.append(-torch.log(picked).flatten())
        for c in range(1, logits.shape[1]):
            if annotated[b, c]:
                ref = (label == c).double()
                overlap = (probs[b, c] * ref).sum()
                dice = (2 * overlap + 1e-5) / (probs[b, c].sum() + ref.sum() + 1e-5)
                dice_terms.append(1 - dice)
    return torch.stack(dice_terms).mean() + torch.cat(ce_terms).mean()


def _two_partial_cases():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 5, 6, 7, generator=generator, requires_grad=True)
    target = torch.randint(0, 3, (2, 1, 5, 6, 7), generator=generator)
    target[0][target[0] == 2] = 0  # case a annotates class 1 only: class 2 hides in "0"
    target[1][target[1] == 1] = 0  # case b annotates class 2 only
    annotated = annotated_mask(["a", "b"], {"a": (1,), "b": (2,)}, 3)
    return logits, target, annotated


def test_matches_a_voxel_by_voxel_reference() -> None:
    logits, target, annotated = _two_partial_cases()
    loss = MarginalLoss()(logits, target, annotated)
    torch.testing.assert_close(loss.double(), _reference(logits, target, annotated))


def test_gradient_reaches_unannotated_classes_only_through_merged_background() -> None:
    logits, target, annotated = _two_partial_cases()
    MarginalLoss()(logits, target, annotated).backward()
    grad = logits.grad
    probs = torch.softmax(logits.detach(), dim=1)
    for b, missing in ((0, 2), (1, 1)):
        background = target[b, 0] == 0
        # the loss sees only p_0 + p_missing there: d/dz_k = p_k * g for both, with one g
        torch.testing.assert_close(
            grad[b, missing][background] / probs[b, missing][background],
            grad[b, 0][background] / probs[b, 0][background],
        )
        # moving mass between background and the missing class changes nothing
        swapped = logits.detach().clone()
        swapped[b, [0, missing]] = swapped[b, [missing, 0]]
        where = background.expand_as(swapped[b, 0])
        shuffled = logits.detach().clone()
        shuffled[b, 0] = torch.where(where, swapped[b, 0], shuffled[b, 0])
        shuffled[b, missing] = torch.where(where, swapped[b, missing], shuffled[b, missing])
        torch.testing.assert_close(
            MarginalLoss()(shuffled, target, annotated),
            MarginalLoss()(logits.detach(), target, annotated),
        )
    # an annotated class is told apart from background: the same swap changes the loss
    shuffled = logits.detach().clone()
    shuffled[0, [0, 1]] = shuffled[0, [1, 0]]
    assert not torch.isclose(
        MarginalLoss()(shuffled, target, annotated),
        MarginalLoss()(logits.detach(), target, annotated),
    )


def test_unlabelled_sample_adds_nothing() -> None:
    logits, target, annotated = _two_partial_cases()
    unlabelled = torch.cat([annotated, torch.zeros(1, 3, dtype=torch.bool)])
    extra = torch.randn(1, 3, 5, 6, 7, requires_grad=True)
    both = torch.cat([logits, extra])
    loss = MarginalLoss()(both, torch.cat([target, torch.ones_like(target[:1])]), unlabelled)
    loss.backward()
    torch.testing.assert_close(loss, MarginalLoss()(logits.detach(), target, annotated))
    assert extra.grad is not None
    assert not extra.grad.any()
    nothing = torch.zeros(2, 3, dtype=torch.bool)
    assert MarginalLoss()(logits.detach(), target, nothing) == 0


@pytest.mark.parametrize("ignore", [None, 3])
def test_build_loss_partial_equals_full_when_everything_annotated(tiny_plan, ignore) -> None:
    plan = tiny_plan(ignore=ignore)
    config = plan.configuration()
    generator = torch.Generator().manual_seed(0)
    outputs = [torch.randn(2, 3, 8, 8, 8, generator=generator), torch.randn(2, 3, 4, 4, 4)]
    target = torch.randint(0, 4 if ignore else 3, (2, 1, 8, 8, 8), generator=generator)
    partial = build_loss(plan, config, partial=True)
    assert isinstance(partial.loss, MarginalLoss)
    everything = torch.ones(2, 3, dtype=torch.bool)
    torch.testing.assert_close(
        partial(outputs, target, everything), build_loss(plan, config)(outputs, target)
    )


def test_partial_loss_refuses_regions_and_weighs_classes(tiny_plan) -> None:
    regions = tiny_plan(regions={"whole": (1, 2), "core": (2,)})
    with pytest.raises(ConfigError, match="softmax"):
        build_loss(regions, regions.configuration(), partial=True)
    plan = tiny_plan(ignore=3)
    config = plan.configuration()
    other = dataclasses.replace(
        config, training=dataclasses.replace(config.training, extra_losses={"cldice": 0.5})
    )
    with pytest.raises(ConfigError, match="extra_losses"):
        build_loss(plan, other, partial=True)
    weighted = dataclasses.replace(
        config, training=dataclasses.replace(config.training, class_weights=(1.0, 2.0, 5.0))
    )
    generator = torch.Generator().manual_seed(1)
    outputs = [torch.randn(2, 3, 8, 8, 8, generator=generator)]
    target = torch.randint(0, 4, (2, 1, 8, 8, 8), generator=generator)
    everything = torch.ones(2, 3, dtype=torch.bool)
    partial = build_loss(plan, weighted, partial=True)(outputs, target, everything)
    full = build_loss(plan, weighted)(outputs, target)
    torch.testing.assert_close(partial, full)
    assert not torch.isclose(full, build_loss(plan, config)(outputs, target))


def test_batches_carry_the_annotated_mask(source) -> None:
    def sampler(**options) -> PatchSampler:
        return PatchSampler(
            source, ["case0", "case1"], (8, 8, 8), 4, 0.5, foreground_labels=(1, 2), **options
        )

    plain = sampler().sample(np.random.default_rng(5))
    assert plain.annotated is None
    marked = sampler(annotated={"case0": (2,)}, num_classes=3).sample(np.random.default_rng(5))
    np.testing.assert_array_equal(marked.image, plain.image)  # same draws as without the mask
    rows = {tuple(r) for r in marked.annotated.tolist()}
    assert rows <= {(True, False, True), (True, True, True)}
    semi = sampler(
        annotated={}, num_classes=3, unlabelled_ids=["case3"], unlabelled_per_batch=2
    ).sample(np.random.default_rng(5))
    np.testing.assert_array_equal(semi.image[:4], plain.image)
    assert semi.image.shape[0] == 4 + 2
    assert not semi.annotated[4:].any()
    assert semi.annotated[:4].all()
    assert not semi.label[4:].any()
    stream = BatchStream(sampler(annotated={"case0": (2,)}, num_classes=3), None, seed=1)
    _image, _label, annotated = stream.batch(0)
    assert annotated.dtype == torch.bool
    assert annotated.shape == (4, 3)
    assert annotated_rows(["x", "u"], {}, 3, unlabelled=["u"]).tolist() == [
        [True, True, True],
        [False, False, False],
    ]


class _Spy(nn.Module):
    """A ``wrap_loss`` hook that records what the trainer hands to the loss."""

    def __init__(self, inner: DeepSupervisionLoss, seen: list) -> None:
        super().__init__()
        self.inner, self.loss, self.seen = inner, inner.loss, seen

    def forward(self, outputs, target, *extra):
        self.seen.append((type(self.loss), [tuple(x.shape) for x in extra]))
        return self.inner(outputs, target, *extra)


def test_train_model_uses_the_marginal_loss(tmp_path: Path, raw_dataset: Path) -> None:
    declared = {"s0": [1], "s1": [2], "s2": [1], "s3": [2]}
    for case_id, classes in declared.items():
        path = raw_dataset / "labelsTr" / f"{case_id}.nii.gz"
        image = nib.load(path)
        label = np.asarray(image.dataobj)
        label[~np.isin(label, classes)] = 0
        nib.save(nib.Nifti1Image(label, image.affine), path)
    meta = json.loads((raw_dataset / "dataset.json").read_text())
    (raw_dataset / "dataset.json").write_text(json.dumps({**meta, "annotated_classes": declared}))
    seen: list = []
    result = train_model(
        raw_dataset,
        tmp_path / "model",
        epochs=1,
        device="cpu",
        num_workers=0,
        overrides=FAST,
        wrap_loss=lambda loss, config: _Spy(loss, seen),
    )
    assert seen
    assert all(kind is MarginalLoss for kind, _ in seen)
    assert (MarginalLoss, [(2, 3)]) in seen  # a training batch of 2 with its mask
    metrics = json.loads((result.folds[0].path / "val_metrics.json").read_text())
    for case_id, scores in metrics["per_case"].items():
        for name, value in (("ball", 1), ("core", 2)):
            assert (scores[name] is None) == (value not in declared[case_id])


def test_partial_loss_keeps_the_entropy_term_of_sparse_labels(tiny_plan) -> None:
    plan = tiny_plan(ignore=3)
    config = plan.configuration()
    sparse = dataclasses.replace(
        config, training=dataclasses.replace(config.training, extra_losses={"entropy": 0.5})
    )
    generator = torch.Generator().manual_seed(2)
    outputs = [torch.randn(2, 3, 8, 8, 8, generator=generator)]
    target = torch.randint(0, 4, (2, 1, 8, 8, 8), generator=generator)
    everything = torch.ones(2, 3, dtype=torch.bool)
    with_entropy = build_loss(plan, sparse, partial=True)(outputs, target, everything)
    # independent pieces: the plain loss (equal to the marginal one here) and the entropy
    probs = torch.softmax(outputs[0], 1)
    voxel_entropy = -(probs * probs.log()).sum(1)
    mean_entropy = voxel_entropy[target[:, 0] == 3].mean()
    full = build_loss(plan, config)(outputs, target)
    torch.testing.assert_close(with_entropy, full + 0.5 * mean_entropy)
