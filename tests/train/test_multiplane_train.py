"""``train_model(configuration="multiplane")``: three 2.5D members, one ensemble folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.infer import EnsemblePredictor, load_predictor
from medseg.io import read_image
from medseg.train import ModelFolder, train_model
from medseg.train.ensemble_folder import ENSEMBLE_NAME

FAST = {
    "num_folds": 2,
    "training.iterations_per_epoch": 2,
    "training.val_iterations": 1,
    "training.case_validations": 0,
}


@pytest.mark.slow
def test_multiplane_trains_three_planes_and_predicts_their_mean(
    tmp_path: Path, raw_dataset: Path
) -> None:
    out = tmp_path / "model"
    result = train_model(
        raw_dataset,
        out,
        configuration="multiplane",
        epochs=1,
        device="cpu",
        num_workers=0,
        overrides=FAST,
    )
    members = ["2.5d", "2.5d_plane1", "2.5d_plane2"]
    assert result.configuration == "multiplane"
    assert len(result.folds) == 3
    assert sorted(result.cv_metrics) == sorted(members)
    assert json.loads((out / ENSEMBLE_NAME).read_text())["members"] == members
    for plane, name in enumerate(members):
        model = ModelFolder.load(out / name)
        assert (model.config.plane, model.config.neighbours) == (plane, 2)
        assert (out / "cache" / name).is_dir()
    predictor = load_predictor(out, device="cpu", tta=False)
    assert isinstance(predictor, EnsemblePredictor)
    image = read_image(raw_dataset / "imagesTr" / "s0_0000.nii.gz")
    prediction = predictor.predict_image(image)
    assert prediction.labels.array.shape == (1, *image.spatial_shape)
    assert prediction.members == 3
    assert set(np.unique(prediction.labels.array)) <= {0, 1, 2}
