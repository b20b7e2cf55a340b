"""ONNX export and the onnxruntime engine, checked against the PyTorch network and predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scale_fixtures import scale_plan, write_model
from typer.testing import CliRunner

from medseg._config import from_jsonable
from medseg.cli.main import app_typer
from medseg.errors import ConfigError, ModelFormatError
from medseg.infer import Predictor
from medseg.io import Image, read_image
from medseg.plan.plan import Plan
from medseg.scale import export_onnx, make_predictor, read_metadata
from medseg.scale.onnx_export import onnx_bytes
from medseg.scale.onnx_runtime import OnnxPredictor
from medseg.train.model_folder import ModelFolder

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def exported(tiny_model) -> bytes:
    """Fold 0 of the tiny model, exported once for the module (the exporter takes seconds)."""
    return onnx_bytes(ModelFolder.load(tiny_model), 0)


def test_graph_has_dynamic_axes_and_matches_torch_logits(tiny_model, exported):
    session = ort.InferenceSession(exported, providers=["CPUExecutionProvider"])
    (image,) = session.get_inputs()
    assert image.name == "image"
    batch, channels, *spatial = image.shape
    assert channels == 1
    assert all(isinstance(d, str) for d in (batch, *spatial)), image.shape
    network = ModelFolder.load(tiny_model).build_network(0)
    rng = np.random.default_rng(0)
    for shape in [(2, 1, 8, 8, 8), (3, 1, 16, 8, 24)]:  # patch, then another batch and size
        x = rng.normal(size=shape).astype(np.float32)
        with torch.no_grad():
            expected = network(torch.from_numpy(x)).numpy()
        (logits,) = session.run(None, {"image": x})
        assert logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)


def test_onnx_predictor_labels_agree_with_torch(tiny_model, exported):
    rng = np.random.default_rng(3)
    array = rng.normal(40, 15, (1, 12, 30, 26)).astype(np.float32)
    image = Image.from_array(array, (3.0, 0.8, 0.8), (1.0, 2.0, 3.0))
    reference = Predictor(tiny_model, device="cpu").predict_image(image, probabilities=True)
    onnx = OnnxPredictor(tiny_model, device="cpu", onnx_models={0: exported})
    result = onnx.predict_image(image, probabilities=True)
    agreement = (result.labels.array == reference.labels.array).mean()
    assert agreement >= 0.999, agreement
    assert len(np.unique(reference.labels.array)) > 1  # not a trivially constant label map
    np.testing.assert_allclose(
        result.probabilities.array.astype(np.float32),
        reference.probabilities.array.astype(np.float32),
        atol=2e-3,  # float16 storage
    )
    assert result.labels.origin == image.origin


@pytest.mark.slow
def test_2d_region_model_runs_through_onnx_on_slices(tmp_path):
    regions = {"whole": (1, 2), "core": (2,)}
    model = write_model(tmp_path / "m2d", scale_plan(ndim=2, regions=regions))
    assert read_metadata_of(model)["activation"] == "sigmoid"
    rng = np.random.default_rng(1)
    image = Image.from_array(rng.normal(40, 15, (1, 3, 20, 18)).astype(np.float32))
    reference = Predictor(model, device="cpu").predict_image(image)
    result = make_predictor(model, runtime="onnx", device="cpu").predict_image(image)
    assert (result.labels.array == reference.labels.array).mean() >= 0.999


def read_metadata_of(model):  # type: ignore[no-untyped-def]
    """Metadata entries of fold 0 without exporting (the dictionary the export writes)."""
    from medseg.scale.onnx_export import metadata

    return {k.removeprefix("medseg."): v for k, v in metadata(ModelFolder.load(model), 0).items()}


def test_cli_export_writes_metadata_labels_preprocessing_and_plan(tiny_model, tmp_path):
    target = tmp_path / "sub" / "model.onnx"
    result = CliRunner().invoke(app_typer, ["export", str(tiny_model), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "fold 0" in result.output
    meta = read_metadata(target)
    assert meta["labels"] == {"background": 0, "ball": 1, "shell": 2}
    assert meta["activation"] == "softmax"
    assert meta["fold"] == 0
    assert meta["configuration"] == "3d"
    assert meta["preprocessing"]["spacing"] == [3.0, 1.6, 1.6]
    assert meta["preprocessing"]["patch_size"] == [8, 8, 8]
    assert meta["preprocessing"]["normalization"][0]["scheme"] == "zscore"
    assert from_jsonable(Plan, meta["plan"]) == ModelFolder.load(tiny_model).plan
    assert not list(target.parent.glob(".tmp-*"))  # written atomically, nothing left behind


@pytest.mark.slow
def test_cli_predict_with_onnx_runtime_matches_torch(tiny_model, write_cases, tmp_path):
    (case,) = write_cases(tmp_path / "in", 1)
    outputs = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / runtime
        args = ["predict", str(tiny_model), str(case), "-o", str(out), "--device", "cpu"]
        result = CliRunner().invoke(app_typer, [*args, "--fast", "--runtime", runtime])
        assert result.exit_code == 0, result.output
        outputs[runtime] = read_image(out / "case0.nii.gz").array
    assert (outputs["onnx"] == outputs["torch"]).mean() >= 0.999


def test_errors_name_the_problem(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="unknown runtime 'tensorrt'"):
        make_predictor(tiny_model, runtime="tensorrt")
    with pytest.raises(ModelFormatError, match="fold 3 has no weights"):
        export_onnx(tiny_model, tmp_path / "x.onnx", fold=3)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelFormatError, match=r"garbage\.onnx"):
        read_metadata(garbage)
