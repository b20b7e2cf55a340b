"""Fixtures for the server: a tiny oblique nnU-Net dataset, a random-weight model, clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medseg.data import write_dataset_json
from medseg.io import Image, write_image

SHAPE = (12, 28, 26)
SPACING = (3.0, 0.8, 0.9)
ORIGIN = (12.5, -30.25, 7.0)
_A = 0.3
OBLIQUE = np.array([[np.cos(_A), 0.0, np.sin(_A)], [0.0, 1.0, 0.0], [-np.sin(_A), 0.0, np.cos(_A)]])
TOKEN = "test-token-0123456789"


def ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape, dtype=float)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def case_arrays(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image (bright sphere and cube in noise) and its label map, (Z, Y, X)."""
    rng = np.random.default_rng(index)
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[ball(SHAPE, (6, 10 + index, 9), 4.5)] = 1
    label[3:9, 17:24, 15:22] = 2
    image = 100.0 * (label == 1) + 160.0 * (label == 2) + rng.normal(0, 8, SHAPE)
    return image.astype(np.float32), label


@pytest.fixture
def blobs() -> SimpleNamespace:
    """The dataset's constants for test modules (which cannot import conftest)."""
    return SimpleNamespace(
        shape=SHAPE,
        spacing=SPACING,
        origin=ORIGIN,
        direction=OBLIQUE,
        token=TOKEN,
        arrays=case_arrays,
    )


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """nnU-Net raw folder: 3 labelled training cases, 1 test case, oblique geometry."""
    root = tmp_path / "Dataset002_Blobs"
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (root / folder).mkdir(parents=True)
    geometry = {"spacing": SPACING, "origin": ORIGIN, "direction": OBLIQUE}
    for i in range(4):
        image, label = case_arrays(i)
        part = "imagesTr" if i < 3 else "imagesTs"
        write_image(Image.from_array(image[None], **geometry), root / part / f"case{i}_0000.nii.gz")
        if i < 3:
            write_image(
                Image.from_array(label[None], **geometry), root / "labelsTr" / f"case{i}.nii.gz"
            )
    write_dataset_json(
        root,
        channel_names={0: "CT"},
        labels={"background": 0, "sphere": 1, "cube": 2},
        num_training=3,
        file_ending=".nii.gz",
    )
    return root


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A 3D model folder with random weights (labels background/sphere/cube)."""
    from medseg.plan.plan import (
        ChannelNormalization,
        Configuration,
        NetworkConfig,
        Plan,
        TrainingConfig,
    )
    from medseg.train.model_folder import save_fold, save_model_folder
    from medseg.train.networks import build_network

    network = NetworkConfig(
        filters=(4, 8, 16),
        kernel_sizes=((3, 3, 3),) * 3,
        strides=((1, 1, 1), (1, 2, 2), (2, 2, 2)),
        deep_supervision_heads=1,
    )
    config = Configuration(
        name="3d",
        spacing=SPACING,
        patch_size=(8, 16, 16),
        batch_size=2,
        network=network,
        training=TrainingConfig(mirror_axes=()),
    )
    plan = Plan(
        dataset_name="Blobs",
        channel_names={0: "CT"},
        labels={"background": 0, "sphere": 1, "cube": 2},
        regions={},
        region_order=(),
        num_classes=3,
        normalization=(ChannelNormalization(scheme="zscore"),),
        configurations={"3d": config},
        default_configuration="3d",
        num_folds=1,
    )
    path = tmp_path / "model"
    save_model_folder(path, plan, configuration="3d")
    torch.manual_seed(0)
    net = build_network(config.network, in_channels=1, out_channels=3, ndim=3)
    save_fold(path, 0, net)
    return path


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., object]]:
    """``make_client(data, **config)`` -> an entered TestClient on a fresh app (classical)."""
    from fastapi.testclient import TestClient

    from medseg.interactive.classical import RandomWalkerEngine
    from medseg.server import ServeConfig, create_app

    clients = []

    def make(data: Path, *, engine=None, **kwargs):
        kwargs.setdefault("output", tmp_path / "corrected")
        kwargs.setdefault("precompute", False)
        app = create_app(ServeConfig(data=data, **kwargs), engine=engine or RandomWalkerEngine())
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
