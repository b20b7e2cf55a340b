"""Model folder: round trip, and one-line ModelFormatError for every broken folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medseg.errors import ModelFormatError
from medseg.train.model_folder import (
    ALL_FOLD,
    ModelFolder,
    fold_dir,
    save_fold,
    save_model_folder,
)
from medseg.train.networks import build_network


@pytest.fixture
def folder(tmp_path: Path, plan) -> Path:
    out = save_model_folder(tmp_path / "model", plan, configuration="3d", fingerprint={"n": 1})
    torch.manual_seed(0)
    net = build_network(plan.configuration().network, 1, 3, 3)
    save_fold(
        out, 0, net, val_metrics={"dice": {"ball": 0.8, "core": float("nan")}, "mean_dice": 0.8}
    )
    save_fold(out, 1, net, val_metrics={"dice": {"ball": 0.6, "core": 0.5}, "mean_dice": 0.55})
    return out


def test_round_trip(folder: Path, plan) -> None:
    model = ModelFolder.load(folder)
    assert model.folds == [0, 1]
    assert model.plan == plan
    assert model.config == plan.configuration("3d")
    assert model.labels == {"background": 0, "ball": 1, "core": 2}
    assert model.fingerprint == {"n": 1}
    assert model.postprocessing == {}
    assert model.cv_metrics["dice"] == pytest.approx({"ball": 0.7, "core": 0.5})
    assert model.val_metrics(0)["dice"]["core"] is None  # NaN stored as null
    net = model.build_network(0, "cpu")
    assert not net.training
    saved = load_file(str(folder / "fold_0" / "model.safetensors"))
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, saved[name])
    info = json.loads((folder / "model.json").read_text())
    assert info["format_version"] == 1
    assert info["folds"] == [0, 1]
    assert json.loads((folder / "dataset.json").read_text())["file_ending"] == ".nii.gz"


def test_postprocessing_and_all_fold(folder: Path, plan) -> None:
    (folder / "postprocessing.json").write_text('{"keep_largest": [1]}')
    save_fold(folder, ALL_FOLD, build_network(plan.configuration().network, 1, 3, 3))
    model = ModelFolder.load(folder)
    assert model.postprocessing == {"keep_largest": [1]}
    assert model.folds == [ALL_FOLD, 0, 1]
    assert fold_dir(folder, ALL_FOLD).name == "fold_all"
    assert model.cv_metrics["dice"]["ball"] == pytest.approx(0.7)  # fold_all is not a CV fold


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"medseg_version": "9.0.0"}, "incompatible with installed medseg"),
        ({"medseg_version": "garbage"}, "incompatible"),
        ({"format_version": 99}, "format version 99"),
        ({"configuration": "2d"}, r"configuration .2d. is not in plan\.json"),
    ],
)
def test_tampered_model_json(folder: Path, change: dict, message: str) -> None:
    _edit_json(folder / "model.json", **change)
    with pytest.raises(ModelFormatError, match=message):
        ModelFolder.load(folder)


def test_missing_weights(folder: Path) -> None:
    (folder / "fold_1" / "model.safetensors").unlink()
    model = ModelFolder.load(folder)
    assert model.folds == [0]
    with pytest.raises(ModelFormatError, match="fold 1 has no weights"):
        model.build_network(1)
    (folder / "fold_0" / "model.safetensors").unlink()
    with pytest.raises(ModelFormatError, match="no trained fold has weights"):
        ModelFolder.load(folder)


def test_corrupt_safetensors(folder: Path) -> None:
    path = folder / "fold_0" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelFormatError, match="corrupt safetensors"):
        ModelFolder.load(folder).build_network(0)


def test_weights_of_another_network(folder: Path, plan) -> None:
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(3)}, str(folder / "fold_0" / "model.safetensors"))
    with pytest.raises(ModelFormatError, match="do not fit"):
        ModelFolder.load(folder).build_network(0)


def test_missing_or_edited_plan(folder: Path) -> None:
    _edit_json(folder / "plan.json", num_folds=3)
    with pytest.raises(ModelFormatError, match="plan differs"):
        ModelFolder.load(folder)
    (folder / "plan.json").unlink()
    with pytest.raises(ModelFormatError, match=r"plan\.json: missing"):
        ModelFolder.load(folder)


def test_missing_folder_and_bad_json(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(ModelFormatError, match="not found"):
        ModelFolder.load(tmp_path / "nothing")
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        ModelFolder.load(folder)


def test_no_pickle_files_are_written(folder: Path) -> None:
    suffixes = {p.suffix for p in folder.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".safetensors"}


def test_plan_written_before_a_training_field_existed(folder: Path) -> None:
    import hashlib

    plan_path = folder / "plan.json"
    data = json.loads(plan_path.read_text())
    del data["configurations"]["3d"]["training"]["semi_supervised"]  # as an older medseg wrote it
    plan_path.write_text(json.dumps(data))
    info = json.loads((folder / "model.json").read_text())
    info["plan_sha256"] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    (folder / "model.json").write_text(json.dumps(info))
    assert ModelFolder.load(folder).config.training.semi_supervised == "off"
    data["configurations"]["3d"]["training"]["epochs"] += 1  # an edited plan is still refused
    plan_path.write_text(json.dumps(data))
    with pytest.raises(ModelFormatError, match="plan differs"):
        ModelFolder.load(folder)
