"""Builders shared by the medseg.scale tests (imported by conftest and test modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medseg.plan.plan import (
    ChannelNormalization,
    Configuration,
    NetworkConfig,
    Plan,
    TrainingConfig,
)

SPACING = (3.0, 0.8, 0.8)


def scale_plan(*, ndim: int = 3, regions: dict | None = None) -> Plan:
    """A 3-stage (4-8-16) U-Net on 8^ndim patches; labels background/ball/shell."""
    network = NetworkConfig(
        filters=(4, 8, 16),
        kernel_sizes=((3,) * ndim,) * 3,
        strides=((1,) * ndim, (2,) * ndim, (2,) * ndim),
        deep_supervision_heads=1,
    )
    name = "3d" if ndim == 3 else "2d"
    config = Configuration(
        name=name,
        spacing=(3.0, 1.6, 1.6) if ndim == 3 else (1.0, 1.0),
        patch_size=(8,) * ndim,
        batch_size=2,
        network=network,
        training=TrainingConfig(mirror_axes=tuple(range(1, ndim)), iterations_per_epoch=2),
    )
    regions = regions or {}
    return Plan(
        dataset_name="Tiny",
        channel_names={0: "MR"},
        labels={"background": 0, "ball": 1, "shell": 2},
        regions=regions,
        region_order=tuple(range(1, len(regions) + 1)),
        num_classes=len(regions) if regions else 3,
        normalization=(ChannelNormalization(scheme="zscore"),),
        configurations={name: config},
        default_configuration=name,
        num_folds=2,
    )


def write_model(path: Path, plan: Plan, folds: tuple[int, ...] = (0,)) -> Path:
    """A model folder with seeded random weights per fold."""
    from medseg.train.model_folder import save_fold, save_model_folder
    from medseg.train.networks import build_network

    save_model_folder(path, plan, configuration=plan.default_configuration)
    config = plan.configuration()
    for fold in folds:
        torch.manual_seed(fold)
        net = build_network(
            config.network,
            in_channels=1,
            out_channels=plan.num_classes,
            ndim=len(config.patch_size),
        )
        save_fold(path, fold, net)
    return path


def ellipsoid(shape: tuple[int, ...] = (10, 24, 20), seed: int = 0) -> np.ndarray:
    """A noisy bright ellipsoid with a brighter core, float32, zero outside."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grid))
    inside = 50.0 + 30.0 * (r < 0.5) + rng.normal(0, 2, shape)
    return np.where(r < 0.95, inside, 0.0).astype(np.float32)


def write_raw_dataset(root: Path, n: int = 4) -> Path:
    """An nnU-Net raw folder of ``n`` 20^3 sphere cases (1 mm): label 1 ball, 2 core."""
    import json

    import nibabel as nib

    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(1)
    grid = np.indices((20, 20, 20)).astype(float)
    for i in range(n):
        centre = 10 + rng.uniform(-2, 2, size=3)
        dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
        label = np.where(dist < 2.5, 2, np.where(dist < 5, 1, 0)).astype(np.uint8)
        image = label + rng.normal(0, 0.3, label.shape).astype(np.float32)
        # nibabel stores (x, y, z); medseg arrays are (z, y, x)
        nib.save(nib.Nifti1Image(image.T, np.eye(4)), root / "imagesTr" / f"s{i}_0000.nii.gz")
        nib.save(nib.Nifti1Image(label.T, np.eye(4)), root / "labelsTr" / f"s{i}.nii.gz")
    meta = {
        "channel_names": {"0": "MR"},
        "labels": {"background": 0, "ball": 1, "core": 2},
        "numTraining": n,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def training_plan(
    *, epochs: int = 2, iterations: int = 2, batch: int = 2, time_budget_s: float | None = None
) -> Plan:
    """The tiny 3D plan with short fp32 training on 1 mm spacing (for the sphere dataset).

    ``time_budget_s`` is what ``medseg plan`` puts into CPU plans (time-budgeted training).
    """
    from dataclasses import replace

    plan = scale_plan()
    config = plan.configuration()
    training = TrainingConfig(
        epochs=epochs,
        iterations_per_epoch=iterations,
        val_iterations=1,
        oversample_foreground=0.5,
        mixed_precision="off",
        time_budget_s=time_budget_s,
    )
    config = replace(config, spacing=(1.0, 1.0, 1.0), batch_size=batch, training=training)
    return replace(plan, labels={"background": 0, "ball": 1, "core": 2}).with_configuration(config)
