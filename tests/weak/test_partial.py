"""The marginal (partial-label) loss and the annotated-classes declaration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from weak_phantoms import write_phantom_dataset

from medseg.data import load_dataset
from medseg.errors import DatasetError
from medseg.io import read_image, write_image
from medseg.train.losses import SegmentationLoss
from medseg.weak.partial import (
    MarginalLoss,
    annotated_classes,
    annotated_mask,
    write_partial_declaration,
)


def _batch(seed: int = 0, classes: int = 4):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, classes, (3, 1, 6, 7, 8), generator=generator)
    logits = torch.randn(3, classes, 6, 7, 8, generator=generator)
    return logits, target


@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize("ignore", [None, 4])
def test_equals_the_full_loss_when_every_class_is_annotated(batch_dice, ignore) -> None:
    logits, target = _batch()
    if ignore is not None:
        target[:, :, :2] = ignore
    everything = torch.ones(3, 4, dtype=torch.bool)
    marginal = MarginalLoss(ignore_label=ignore, batch_dice=batch_dice)(logits, target, everything)
    full = SegmentationLoss(ignore_label=ignore, batch_dice=batch_dice)(logits, target)
    torch.testing.assert_close(marginal, full)


def test_unannotated_class_is_not_called_background() -> None:
    target = torch.zeros(2, 1, 4, 5, 6, dtype=torch.long)  # all "background"
    logits = torch.zeros(2, 4, 4, 5, 6)
    logits[:, 3] = 30.0  # the network finds class 3 everywhere
    without_3 = torch.ones(2, 4, dtype=torch.bool)
    without_3[:, 3] = False
    marginal = MarginalLoss()(logits, target, without_3)
    assert marginal < 1e-3  # class 3 may hide in what this case calls background
    full = SegmentationLoss()(logits, target)
    assert full > 10
    everything = torch.ones(2, 4, dtype=torch.bool)
    torch.testing.assert_close(MarginalLoss()(logits, target, everything), full)


def test_gradient_flows_and_mask_helper() -> None:
    logits, target = _batch(2)
    logits.requires_grad_(True)
    annotated = annotated_mask(["a", "b", "c"], {"b": (1,)}, 4)
    assert annotated.tolist()[1] == [True, True, False, False]
    assert annotated[0].all()
    MarginalLoss()(logits, target, annotated).backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()


def test_declaration_is_checked_against_the_labels(tmp_path: Path) -> None:
    root = write_phantom_dataset(tmp_path / "Dataset003_Partial")
    path = root / "labelsTr" / "case_1.nii.gz"
    image = read_image(path)
    write_image(image.with_array(np.where(image.array == 2, 0, image.array)), path)
    write_partial_declaration(root, {"case_1": [1]})
    assert annotated_classes(load_dataset(root)) == {"case_1": (1,)}
    write_partial_declaration(root, {"case_1": [1, 2]})
    with pytest.raises(DatasetError, match=r"case_1.nii.gz: the case declares classes \[2\]"):
        annotated_classes(load_dataset(root))
    write_partial_declaration(root, {"case_0": [1]})
    with pytest.raises(DatasetError, match=r"contains classes \[2\] that annotated_classes"):
        annotated_classes(load_dataset(root))
    write_partial_declaration(root, {"case_9": [1]})
    with pytest.raises(DatasetError, match="no labelled case"):
        annotated_classes(load_dataset(root))
    write_partial_declaration(root, {"case_0": [5]})
    with pytest.raises(DatasetError, match="not foreground classes"):
        annotated_classes(load_dataset(root))
