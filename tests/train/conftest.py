"""Fixtures for medseg.train: tiny in-memory case sources, plans and an on-disk dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.plan.plan import (
    ChannelNormalization,
    Configuration,
    NetworkConfig,
    Plan,
    TrainingConfig,
)


class ArraySource:
    """In-memory stand-in for ``medseg.preprocess.CaseCache`` (same three methods)."""

    def __init__(self, cases: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.cases = cases

    @property
    def case_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.cases))

    def load(self, case_id: str, mmap: bool = True):
        image, label = self.cases[case_id]
        return image, label, {}

    def foreground_locations(self, case_id: str) -> dict[int, np.ndarray]:
        label = self.cases[case_id][1][0]
        return {int(v): np.argwhere(label == v) for v in np.unique(label) if v != 0}


def sphere_case(
    rng: np.random.Generator, shape=(20, 20, 20), radius=5.0, inner=2.5
) -> tuple[np.ndarray, np.ndarray]:
    """A noisy bright sphere (label 1) with a brighter core (label 2); image (1, Z, Y, X)."""
    centre = np.array(shape) / 2 + rng.uniform(-2, 2, size=3)
    grid = np.indices(shape).astype(float)
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    label = np.where(dist < inner, 2, np.where(dist < radius, 1, 0)).astype(np.int16)
    image = label.astype(np.float32) + rng.normal(0, 0.3, shape).astype(np.float32)
    return image[None], label[None]


@pytest.fixture
def source() -> ArraySource:
    rng = np.random.default_rng(0)
    return ArraySource({f"case{i}": sphere_case(rng) for i in range(4)})


def _tiny_plan(
    *,
    ndim: int = 3,
    epochs: int = 2,
    iterations: int = 2,
    regions: dict | None = None,
    ignore: int | None = None,
    mirror: tuple[int, ...] = (),
) -> Plan:
    """A 3-stage (4-8-16) network on 8^3 (or 8^2) patches, 2 epochs of 2 iterations."""
    labels = {"background": 0, "ball": 1, "core": 2}
    if ignore is not None:
        labels["ignore"] = ignore
    network = NetworkConfig(
        filters=(4, 8, 16),
        kernel_sizes=((3,) * ndim,) * 3,
        strides=((1,) * ndim, (2,) * ndim, (2,) * ndim),
        deep_supervision_heads=1,
    )
    training = TrainingConfig(
        epochs=epochs,
        iterations_per_epoch=iterations,
        val_iterations=1,
        oversample_foreground=0.5,
        mirror_axes=mirror,
        mixed_precision="off",
    )
    name = "3d" if ndim == 3 else "2d"
    config = Configuration(
        name=name,
        spacing=(1.0,) * ndim,
        patch_size=(8,) * ndim,
        batch_size=2,
        network=network,
        training=training,
    )
    regions = regions or {}
    return Plan(
        dataset_name="Spheres",
        channel_names={0: "MR"},
        labels=labels,
        regions=regions,
        region_order=tuple(range(1, len(regions) + 1)),
        ignore_label=ignore,
        num_classes=len(regions) if regions else 3,
        normalization=(ChannelNormalization(scheme="zscore"),),
        configurations={name: config},
        default_configuration=name,
        num_folds=2,
    )


@pytest.fixture
def tiny_plan():
    """Factory ``tiny_plan(ndim=3, epochs=2, iterations=2, regions=, ignore=, mirror=)``."""
    return _tiny_plan


@pytest.fixture
def array_source() -> type[ArraySource]:
    """The in-memory case-source class, to build sources from arrays."""
    return ArraySource


@pytest.fixture
def plan() -> Plan:
    return _tiny_plan()


@pytest.fixture
def raw_dataset(tmp_path: Path) -> Path:
    """An nnU-Net raw folder with 4 sphere cases of 20^3 voxels (1 mm)."""
    import nibabel as nib

    root = tmp_path / "Dataset001_Spheres"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        image, label = sphere_case(rng)
        affine = np.eye(4)
        # nibabel stores (x, y, z); medseg arrays are (z, y, x)
        nib.save(nib.Nifti1Image(image[0].T, affine), root / "imagesTr" / f"s{i}_0000.nii.gz")
        nib.save(
            nib.Nifti1Image(label[0].T.astype(np.uint8), affine), root / "labelsTr" / f"s{i}.nii.gz"
        )
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "MR"},
                "labels": {"background": 0, "ball": 1, "core": 2},
                "numTraining": 4,
                "file_ending": ".nii.gz",
            }
        )
    )
    return root
