"""Rater sampling: each patch of a case with several raters takes one rater's label map."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import ConfigError
from medseg.train import train_model
from medseg.train.sampling import PatchSampler

FAST = {"num_folds": 2, "training.iterations_per_epoch": 2, "training.val_iterations": 1}


def test_each_patch_takes_one_raters_label(source) -> None:
    label = source.cases["case0"][1]
    ball, core = np.where(label > 0, 1, 0), np.where(label > 0, 2, 0)  # two raters disagree
    sampler = PatchSampler(
        source,
        ["case0"],
        (8, 8, 8),
        2,
        1.0,
        foreground_labels=(1, 2),
        raters={"case0": [ball.astype(np.int16), core.astype(np.int16)]},
    )
    seen = set()
    for seed in range(20):
        for patch in sampler.sample(np.random.default_rng(seed)).label:
            values = set(np.unique(patch).tolist()) - {0}
            assert values in ({1}, {2})  # never a mix: one rater per patch
            seen |= values
    assert seen == {1, 2}  # both raters are drawn
    plain = PatchSampler(source, ["case0"], (8, 8, 8), 2, 1.0, foreground_labels=(1, 2))
    no_raters = PatchSampler(
        source, ["case0"], (8, 8, 8), 2, 1.0, foreground_labels=(1, 2), raters={"case0": []}
    )
    np.testing.assert_array_equal(
        no_raters.sample(np.random.default_rng(1)).label,
        plain.sample(np.random.default_rng(1)).label,
    )


def _add_raters(root: Path) -> None:
    """Rater 0 copies each label; rater 1 calls the core ball (label 1)."""
    for i in range(4):
        path = root / "labelsTr" / f"s{i}.nii.gz"
        shutil.copy(path, root / "labelsTr" / f"s{i}_rater0.nii.gz")
        image = nib.load(path)
        label = np.asarray(image.dataobj)
        nib.save(
            nib.Nifti1Image(np.where(label > 0, 1, 0).astype(np.uint8), image.affine),
            root / "labelsTr" / f"s{i}_rater1.nii.gz",
        )


def test_train_model_samples_raters(tmp_path: Path, raw_dataset: Path) -> None:
    from medseg.preprocess import CaseCache

    with pytest.raises(ConfigError, match="no training case has rater label maps"):
        train_model(
            raw_dataset,
            tmp_path / "none",
            epochs=1,
            device="cpu",
            num_workers=0,
            overrides={**FAST, "training.rater_sampling": True},
        )
    _add_raters(raw_dataset)
    result = train_model(
        raw_dataset,
        tmp_path / "model",
        epochs=1,
        device="cpu",
        num_workers=0,
        overrides={**FAST, "training.rater_sampling": True},
    )
    assert np.isfinite(result.folds[0].train_loss)
    cache = CaseCache(tmp_path / "model" / "cache" / "3d")
    image, label, _ = cache.load("s1")
    first, second = cache.rater_labels("s1")
    np.testing.assert_array_equal(first, label)  # same preprocessing as the case's own label
    np.testing.assert_array_equal(second, np.where(label > 0, 1, 0))
    assert cache.rater_labels("s1")[0].shape == label.shape == (1, *image.shape[1:])
