"""The cascade end to end: 3d_lowres trained, then 3d_cascade_fullres on its out-of-fold labels,
then predicted by one Predictor on exactly the input's grid."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.errors import ConfigError
from medseg.infer import Predictor
from medseg.io import Image, read_image, write_image
from medseg.train import ModelFolder, train_model
from medseg.train.cascade import CascadeError

FAST = {"num_folds": 2, "training.iterations_per_epoch": 2, "training.val_iterations": 1}
SPACING = (1.1, 0.8, 0.9)
ORIGIN = (-12.5, 30.25, 7.0)
_A = 0.3
OBLIQUE = np.array([[np.cos(_A), -np.sin(_A), 0.0], [np.sin(_A), np.cos(_A), 0.0], [0, 0, 1.0]])


def _ball(rng: np.random.Generator, shape=(36, 40, 32)) -> tuple[np.ndarray, np.ndarray]:
    centre = np.array(shape) / 2 + rng.uniform(-3, 3, size=3)
    grid = np.indices(shape).astype(float)
    dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    label = np.where(dist < 4, 2, np.where(dist < 9, 1, 0)).astype(np.uint8)
    image = label.astype(np.float32) + rng.normal(0, 0.3, shape).astype(np.float32)
    return image, label


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 cases of 36 x 40 x 32 voxels, anisotropic spacing, oblique direction."""
    root = tmp_path_factory.mktemp("cascade") / "Dataset002_Balls"
    rng = np.random.default_rng(4)
    for i in range(4):
        image, label = _ball(rng)
        for array, path in (
            (image, f"imagesTr/b{i}_0000.nii.gz"),
            (label, f"labelsTr/b{i}.nii.gz"),
        ):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            write_image(Image.from_array(array[None], SPACING, ORIGIN, OBLIQUE), root / path)
    meta = {
        "channel_names": {"0": "MR"},
        "labels": {"background": 0, "ball": 1, "core": 2},
        "numTraining": 4,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def stages(dataset: Path) -> tuple[Path, Path]:
    """The low-resolution stage (both folds) and the cascade (fold 0), one epoch each."""
    models = dataset.parent / "models"
    common = {"epochs": 1, "device": "cpu", "num_workers": 0, "overrides": FAST}
    train_model(dataset, models / "low", configuration="3d_lowres", folds=[0, 1], **common)
    train_model(
        dataset,
        models / "cascade",
        configuration="3d_cascade_fullres",
        folds=[0],
        previous_stage=models / "low",
        **common,
    )
    return models / "low", models / "cascade"


def test_cascade_without_a_trained_low_resolution_stage_says_what_to_run(dataset, tmp_path):
    with pytest.raises(CascadeError, match=r"medseg train DATASET -o LOWRES --config 3d_lowres"):
        train_model(dataset, tmp_path / "c", configuration="3d_cascade_fullres", overrides=FAST)
    with pytest.raises(CascadeError, match="--config 3d_lowres"):
        train_model(
            dataset,
            tmp_path / "c2",
            configuration="3d_cascade_fullres",
            previous_stage=tmp_path / "nothing",
            overrides=FAST,
        )
    result = CliRunner().invoke(
        app_typer,
        ["train", str(dataset), "-o", str(tmp_path / "c3"), "--config", "3d_cascade_fullres"],
    )
    assert isinstance(result.exception, CascadeError)  # medseg's entry point: one line, exit 1
    assert "--previous-stage LOWRES" in str(result.exception)


@pytest.mark.slow
def test_training_caches_out_of_fold_labels_and_feeds_them_as_channels(stages):
    low, cascade = stages
    model = ModelFolder.load(cascade)
    assert model.configuration_name == "3d_cascade_fullres"
    assert model.previous_stage == low.resolve()
    assert json.loads((cascade / "model.json").read_text())["previous_stage"] == "../low"
    cache = cascade / "cache" / "3d_cascade_fullres"
    state = json.loads((cache / "previous_stage.json").read_text())
    splits = json.loads((low / "splits_final.json").read_text())
    for fold, split in enumerate(splits):
        for case_id in split["val"]:
            assert state["cases"][case_id] == f"out-of-fold: fold {fold}"
            previous = np.load(cache / f"{case_id}_previous.npy")
            image = np.load(cache / f"{case_id}_image.npy", mmap_mode="r")
            assert previous.shape == (1, *image.shape[1:])
            assert set(np.unique(previous)) <= {0, 1, 2}
    key = "input_block.conv1.conv.weight"  # the first convolution: (out, in, k, k, k)
    weights = load_file(str(cascade / "fold_0" / "model.safetensors"))
    assert weights[key].shape[1] == 3  # one image channel + one per foreground label
    assert load_file(str(low / "fold_0" / "model.safetensors"))[key].shape[1] == 1


@pytest.mark.slow
def test_predictor_runs_both_stages_on_the_input_grid(stages, dataset):
    _, cascade = stages
    image = read_image(dataset / "imagesTr" / "b1_0000.nii.gz")
    predictor = Predictor(cascade, device="cpu")
    assert predictor.previous is not None
    assert predictor.previous.model.configuration_name == "3d_lowres"
    labels = predictor.predict_image(image, probabilities=True)
    for result in (labels.labels, labels.probabilities):
        assert result.spatial_shape == image.spatial_shape
        assert result.spacing == image.spacing
        assert result.origin == image.origin
        np.testing.assert_array_equal(result.direction, image.direction)
    assert set(np.unique(labels.labels.array)) <= {0, 1, 2}


@pytest.mark.slow
def test_predictor_needs_the_recorded_low_resolution_stage(stages, tmp_path):
    low, cascade = stages
    moved = tmp_path / "cascade"
    shutil.copytree(cascade, moved, ignore=shutil.ignore_patterns("cache"))
    with pytest.raises(CascadeError, match="--config 3d_lowres"):
        Predictor(moved, device="cpu")
    shutil.copytree(low, tmp_path / "low", ignore=shutil.ignore_patterns("cache"))
    assert Predictor(moved, device="cpu").previous is not None  # found again beside it


@pytest.mark.slow
def test_onnx_export_refuses_a_cascade_stage(stages, tmp_path):
    from medseg.scale.onnx_export import export_onnx

    with pytest.raises(ConfigError, match="single-stage"):
        export_onnx(stages[1], tmp_path / "cascade.onnx")
