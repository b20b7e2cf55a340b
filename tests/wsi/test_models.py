"""A medseg 2D RGB model folder segments a slide through the existing Predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.errors import ConfigError
from medseg.io import Image
from medseg.plan.plan import ChannelNormalization, Configuration, NetworkConfig, Plan
from medseg.wsi import Slide
from medseg.wsi.models import predictor_tile_model
from medseg.wsi.tiled import TiledSettings, predict_slide


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors: one thread avoids waiting for a descheduled second one on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model_folder(path, channels: int = 3):
    from medseg.train.model_folder import save_fold, save_model_folder
    from medseg.train.networks import build_network

    network = NetworkConfig(
        filters=(4, 8, 16),
        kernel_sizes=((3, 3),) * 3,
        strides=((1, 1), (2, 2), (2, 2)),
        deep_supervision_heads=1,
    )
    config = Configuration(
        name="2d", spacing=(0.004, 0.004), patch_size=(32, 32), batch_size=2, network=network
    )
    plan = Plan(
        dataset_name="Tiles",
        channel_names={i: f"C{i}" for i in range(channels)},
        labels={"background": 0, "tumour": 1},
        num_classes=2,
        normalization=tuple(ChannelNormalization(scheme="zscore") for _ in range(channels)),
        configurations={"2d": config},
        default_configuration="2d",
        num_folds=1,
    )
    save_model_folder(path, plan, configuration="2d")
    torch.manual_seed(0)
    net = build_network(network, in_channels=channels, out_channels=2, ndim=2)
    save_fold(path, 0, net)
    return path


def test_model_folder_matches_the_predictor_on_one_window(tmp_path, synthetic_slide):
    from medseg.infer import Predictor

    folder = _model_folder(tmp_path / "model")
    with Slide(synthetic_slide[0]) as slide:
        model = predictor_tile_model(folder, mpp=slide.levels[3].mpp, device="cpu")
        rgb = slide.read_region(3, (0, 0), (64, 80))
        probs = model(rgb)
        assert probs.shape == (2, 64, 80)
        np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=2e-3)  # float16 probabilities
        image = Image.from_array(rgb.astype(np.float32), spacing=(0.004, 0.004))
        direct = Predictor(folder, device="cpu", tta=False).predict_image(image, probabilities=True)
        np.testing.assert_allclose(probs, direct.probabilities.array, atol=1e-5)
        settings = TiledSettings(level=3, tile=128, halo=8, tissue_only=False,
                                 coarse_downsample=None)  # fmt: skip
        report = predict_slide(slide, model, tmp_path / "labels.tif", settings=settings)
    assert report.tiles_refined == 2 * 3
    with Slide(tmp_path / "labels.tif") as out:
        assert out.mpp == pytest.approx((4.0, 4.0))


def test_grey_model_is_refused(tmp_path):
    folder = _model_folder(tmp_path / "grey", channels=1)
    with pytest.raises(ConfigError, match="RGB"):
        predictor_tile_model(folder, mpp=(0.5, 0.5), device="cpu")


def test_cli_predict_writes_the_pyramid_and_reports(tmp_path, synthetic_slide):
    import json

    from typer.testing import CliRunner

    from medseg.cli.main import app_typer

    folder = _model_folder(tmp_path / "model")
    out = tmp_path / "labels.tif"
    args = ["wsi", "predict", str(folder), str(synthetic_slide[0]), "-o", str(out)]
    args += ["--level", "3", "--tile", "64", "--coarse", "2", "--device", "cpu"]
    result = CliRunner().invoke(app_typer, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tiles_total"] == 4 * 5
    assert report["tiles_refined"] <= report["tiles_tissue"] < 20
    with Slide(out) as written:
        assert written.shape == (256, 320)
        assert written.mpp == pytest.approx((4.0, 4.0))


def test_slides_are_told_from_plain_images(tmp_path, synthetic_slide):
    import tifffile
    from PIL import Image as PILImage

    from medseg.wsi import looks_like_slide

    assert looks_like_slide(synthetic_slide[0])
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((64, 64, 3), np.uint8))
    tifffile.imwrite(tmp_path / "tiled.tif", np.zeros((256, 256, 3), np.uint8), tile=(64, 64))
    PILImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "tile.png")
    (tmp_path / "broken.tif").write_bytes(b"II*\0garbage")
    for name in ("plain.tif", "tiled.tif", "tile.png", "broken.tif", "missing.tif"):
        assert not looks_like_slide(tmp_path / name), name
    (tmp_path / "scan.svs").write_bytes(b"")
    assert looks_like_slide(tmp_path / "scan.svs")  # by its format; Slide() reports problems


def test_medseg_predict_routes_a_slide_to_tiled_prediction(tmp_path, synthetic_slide):
    from typer.testing import CliRunner

    from medseg.cli.main import app_typer
    from medseg.wsi.models import segment_slide

    folder = _model_folder(tmp_path / "model")
    out = tmp_path / "out"
    args = ["predict", str(folder), str(synthetic_slide[0]), "-o", str(out), "--device", "cpu"]
    result = CliRunner().invoke(app_typer, args)
    assert result.exit_code == 0, result.output
    assert "tiles on tissue" in result.stdout
    reference = segment_slide(folder, synthetic_slide[0], tmp_path / "ref.tif", device="cpu")
    with Slide(out / "slide.tif") as written, Slide(reference.output) as expected:
        assert written.shape == expected.shape == (2048, 2560)
        assert written.mpp == pytest.approx((0.5, 0.5))
        assert len(written.levels) > 1  # a pyramid
        level = len(written.levels) - 1
        assert np.array_equal(written.read_level(level), expected.read_level(level))
        assert np.array_equal(
            written.read_region(0, (512, 512), (512, 768)),
            expected.read_region(0, (512, 512), (512, 768)),
        )


def test_slides_refuse_ray_and_onnx(tmp_path, synthetic_slide):
    from typer.testing import CliRunner

    from medseg.cli.main import app_typer

    folder = _model_folder(tmp_path / "model")
    for extra in (["--ray", "local"], ["--runtime", "onnx"]):
        args = ["predict", str(folder), str(synthetic_slide[0]), "-o", str(tmp_path / "o"), *extra]
        result = CliRunner().invoke(app_typer, args)
        assert result.exit_code != 0
        assert "whole-slide image" in str(result.exception)
        assert not (tmp_path / "o").exists()
