"""Fixtures for medseg.infer: tiny random-weight model folders and images with odd geometry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.io import Image
from medseg.plan.plan import (
    ChannelNormalization,
    Configuration,
    NetworkConfig,
    Plan,
    TrainingConfig,
)

SPACING = (3.0, 0.8, 0.8)
ORIGIN = (12.5, -30.25, 7.0)
_A = 0.4
OBLIQUE = np.array([[np.cos(_A), 0.0, np.sin(_A)], [0.0, 1.0, 0.0], [-np.sin(_A), 0.0, np.cos(_A)]])


def tiny_plan(
    *,
    ndim: int = 3,
    channels: int = 1,
    spacing: tuple[float, ...] | None = None,
    patch: int = 8,
    mirror: tuple[int, ...] = (),
    regions: dict | None = None,
) -> Plan:
    """3-stage (4-8-16) network on ``patch``^ndim tiles, labels background/ball/shell.

    The default 3D target spacing (3.0, 1.6, 1.6) mm halves the in-plane size of the fixture
    images (0.8 mm), so resampling is exercised while few tiles are needed.
    """
    network = NetworkConfig(
        filters=(4, 8, 16),
        kernel_sizes=((3,) * ndim,) * 3,
        strides=((1,) * ndim, (2,) * ndim, (2,) * ndim),
        deep_supervision_heads=1,
    )
    name = "3d" if ndim == 3 else "2d"
    config = Configuration(
        name=name,
        spacing=spacing or ((3.0, 1.6, 1.6) if ndim == 3 else (1.0, 1.0)),
        patch_size=(patch,) * ndim,
        batch_size=2,
        network=network,
        training=TrainingConfig(mirror_axes=mirror),
    )
    regions = regions or {}
    return Plan(
        dataset_name="Tiny",
        channel_names={i: f"MR{i}" for i in range(channels)},
        labels={"background": 0, "ball": 1, "shell": 2},
        regions=regions,
        region_order=tuple(range(1, len(regions) + 1)),
        num_classes=len(regions) if regions else 3,
        normalization=tuple(ChannelNormalization(scheme="zscore") for _ in range(channels)),
        configurations={name: config},
        default_configuration=name,
        num_folds=2,
    )


def make_model_folder(
    path: Path, plan: Plan, *, folds: tuple[int, ...] = (0,), seed: int = 0
) -> Path:
    """A model folder with random weights for each fold (through the training helper's writers)."""
    from medseg.train.model_folder import save_fold, save_model_folder
    from medseg.train.networks import build_network

    save_model_folder(path, plan, configuration=plan.default_configuration)
    config = plan.configuration()
    for fold in folds:
        torch.manual_seed(seed + fold)
        net = build_network(
            config.network,
            in_channels=len(plan.channel_names),
            out_channels=plan.num_classes,
            ndim=len(config.patch_size),
        )
        save_fold(path, fold, net)
    return path


@pytest.fixture
def model_factory(tmp_path: Path) -> Callable[..., Path]:
    """``model_factory(name="model", folds=(0,), **plan_kwargs)`` -> model folder path."""

    def make(name: str = "model", folds: tuple[int, ...] = (0,), **kwargs) -> Path:
        return make_model_folder(tmp_path / name, tiny_plan(**kwargs), folds=folds)

    return make


def ellipsoid(shape=(10, 24, 20), seed: int = 0) -> np.ndarray:
    """A noisy bright ellipsoid (nonzero inside a 'head', zero outside), float32 (Z, Y, X)."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grid))
    return np.where(r < 0.95, 50.0 + 30.0 * (r < 0.5) + rng.normal(0, 2, shape), 0.0).astype(
        np.float32
    )


@pytest.fixture
def oblique_image() -> Image:
    """A (1, 10, 24, 20) image, spacing (3.0, 0.8, 0.8) mm, shifted origin, oblique direction."""
    return Image.from_array(ellipsoid()[None], SPACING, ORIGIN, OBLIQUE)


@pytest.fixture
def make_image() -> Callable[..., Image]:
    """``make_image(shape=(10, 24, 20), seed=0, oblique=True)``: an ellipsoid image."""

    def make(shape=(10, 24, 20), seed: int = 0, oblique: bool = True) -> Image:
        if not oblique:
            return Image.from_array(ellipsoid(shape, seed)[None])
        return Image.from_array(ellipsoid(shape, seed)[None], SPACING, ORIGIN, OBLIQUE)

    return make


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: one thread avoids waiting for a descheduled second one on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
