"""The three-plane ensemble averages its members' probabilities on the input grid."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from planar_phantom import SHAPE, box_image, planar_plan

from medseg.errors import ModelFormatError
from medseg.infer import EnsemblePredictor, Predictor, load_predictor
from medseg.plan.plan import Plan
from medseg.train.ensemble_folder import ENSEMBLE_NAME, save_ensemble_folder
from medseg.train.model_folder import save_fold, save_model_folder
from medseg.train.networks import build_network

MEMBERS = ("2.5d", "2.5d_plane1", "2.5d_plane2")


def three_plane_plan() -> Plan:
    configs = {}
    for plane, name in enumerate(MEMBERS):
        config = planar_plan(plane, 1, ()).configuration()
        configs[name] = dataclasses.replace(config, name=name)
    base = planar_plan(0, 1, ())
    return dataclasses.replace(
        base,
        configurations=configs,
        ensembles={"multiplane": MEMBERS},
        default_configuration="2.5d",
    )


def ensemble_folder(root: Path, first_seed: int = 0) -> Path:
    """Random-weight members (different seeds), as ``train --config multiplane`` lays them out."""
    plan = three_plane_plan()
    save_ensemble_folder(root, plan, "multiplane")
    for seed, name in enumerate(MEMBERS):
        save_model_folder(root / name, plan, configuration=name)
        torch.manual_seed(first_seed + seed)
        config = plan.configuration(name)
        net = build_network(config.network, plan.input_channels(name), plan.num_classes, 2)
        save_fold(root / name, 0, net)
    return root


def test_ensemble_is_the_mean_of_its_members_by_hand(tmp_path: Path) -> None:
    root = ensemble_folder(tmp_path / "model")
    ensemble = load_predictor(root, device="cpu", tta=False)
    assert isinstance(ensemble, EnsemblePredictor)
    image = box_image()
    result = ensemble.predict_image(image, probabilities=True, uncertainty=True)
    by_hand = [
        Predictor(root / name, device="cpu", tta=False)
        .predict_image(image, probabilities=True)
        .probabilities.array.astype(np.float32)
        for name in MEMBERS
    ]
    assert not np.allclose(by_hand[0], by_hand[1], atol=1e-2)  # the planes do disagree
    mean = np.mean(by_hand, axis=0)
    assert result.probabilities.array.shape == (3, *SHAPE)
    np.testing.assert_allclose(result.probabilities.array.astype(np.float32), mean, atol=1e-3)
    assert np.array_equal(result.labels.array[0], mean.argmax(0).astype(np.uint8))
    assert result.labels.spacing == image.spacing
    assert result.members == 3
    info = result.uncertainty["mutual_information"].array
    entropy = result.uncertainty["entropy"].array
    assert info.min() >= 0
    assert info.max() > 0  # members disagree somewhere
    assert (info <= entropy + 1e-6).all()


def test_load_predictor_gives_a_plain_predictor_for_a_model_folder(tmp_path: Path) -> None:
    root = ensemble_folder(tmp_path / "model")
    assert isinstance(load_predictor(root / "2.5d", device="cpu"), Predictor)


def test_malformed_ensemble_files_are_model_format_errors(tmp_path: Path) -> None:
    root = ensemble_folder(tmp_path / "model")
    file = root / ENSEMBLE_NAME
    info = json.loads(file.read_text())
    for bad, match in (
        ({**info, "members": ["2.5d"]}, "at least 2"),
        ({**info, "members": ["2.5d", "../elsewhere"]}, "inside"),
        ({**info, "fusion": "vote"}, "fusion"),
        ({**info, "format": 9}, "format"),
    ):
        file.write_text(json.dumps(bad))
        with pytest.raises(ModelFormatError, match=match):
            load_predictor(root, device="cpu")


def test_an_ensemble_of_ensembles_averages_their_means(tmp_path: Path) -> None:
    """Planes x normalisations: two multiplane folders under one ensemble.json."""
    outer = tmp_path / "outer"
    for first_seed, name in ((0, "zscore"), (10, "minmax")):
        ensemble_folder(outer / name, first_seed)
    (outer / ENSEMBLE_NAME).write_text(
        json.dumps({"format": 1, "fusion": "mean", "members": ["zscore", "minmax"]})
    )
    image = box_image()
    got = load_predictor(outer, device="cpu", tta=False).predict_image(image, probabilities=True)
    inner = [
        load_predictor(outer / name, device="cpu", tta=False)
        .predict_image(image, probabilities=True)
        .probabilities.array.astype(np.float32)
        for name in ("zscore", "minmax")
    ]
    assert not np.allclose(inner[0], inner[1], atol=1e-2)
    np.testing.assert_allclose(
        got.probabilities.array.astype(np.float32), np.mean(inner, axis=0), atol=1e-3
    )
    assert got.members == 6


def test_make_predictor_writes_ensemble_predictions_to_files(tmp_path: Path) -> None:
    from medseg.io import read_image, write_image
    from medseg.scale import make_predictor

    root = ensemble_folder(tmp_path / "model")
    image = box_image()
    (tmp_path / "in").mkdir()
    write_image(image, tmp_path / "in" / "box_0000.nii.gz")
    predictor = make_predictor(root, device="cpu", tta=False)
    assert isinstance(predictor, EnsemblePredictor)
    report = predictor.predict_files(tmp_path / "in", tmp_path / "out")
    assert not report.failures
    written = read_image(tmp_path / "out" / "box.nii.gz")
    expected = predictor.predict_image(image).labels.array
    assert np.array_equal(written.array, expected)
    np.testing.assert_allclose(written.spacing, image.spacing, rtol=1e-6)
