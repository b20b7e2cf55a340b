"""medseg wsi nuclei / tiles / synthetic / train-nuclei through the CLI."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image as PILImage
from typer.testing import CliRunner

from medseg.cli.main import app_typer
from medseg.wsi import NucleiSpec, Slide, read_annotations, synthetic_nuclei


def test_nuclei_command_writes_labels_and_geojson(tmp_path):
    image, truth = synthetic_nuclei(NucleiSpec(count=20), np.random.default_rng(0))
    PILImage.fromarray((image[0] * 255).astype(np.uint8)).save(tmp_path / "cells.png")
    out = tmp_path / "cells_instances.png"
    result = CliRunner().invoke(app_typer, ["wsi", "nuclei", str(tmp_path / "cells.png"), "-o",
                                            str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    labels = np.asarray(PILImage.open(out))
    assert labels.shape == truth.shape
    assert 0.5 * truth.max() < labels.max() <= 1.5 * truth.max()
    annotations = read_annotations(tmp_path / "cells_instances.geojson")
    assert len(annotations) == labels.max()


def test_tiles_command_from_a_label_image(tmp_path, synthetic_slide):
    path, renderer = synthetic_slide
    truth = (renderer.truth(8.0, (0, 0), (256, 320)) == 2).astype(np.uint8)
    PILImage.fromarray(truth).save(tmp_path / "tumour.png")
    args = ["wsi", "tiles", str(path), "-o", str(tmp_path / "ds"), "--label-image",
            str(tmp_path / "tumour.png"), "--classes", "tumour=1", "--level", "3", "--tile",
            "64", "--all-tiles"]  # fmt: skip
    result = CliRunner().invoke(app_typer, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tiles"] == 4 * 5
    assert len(list((tmp_path / "ds" / "labelsTr").iterdir())) == 20


def test_synthetic_and_train_nuclei_commands(tmp_path):
    out = tmp_path / "s.tif"
    result = CliRunner().invoke(app_typer, ["wsi", "synthetic", "-o", str(out), "--size", "512"])
    assert result.exit_code == 0, result.output
    with Slide(out) as slide:
        assert slide.shape == (512, 512)
    result = CliRunner().invoke(
        app_typer, ["wsi", "train-nuclei", "-o", str(tmp_path / "head"), "--seconds", "0"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "head" / "nuclei_head.safetensors").is_file()


def test_bad_classes_option(tmp_path, synthetic_slide):
    result = CliRunner().invoke(app_typer, ["wsi", "tiles", str(synthetic_slide[0]), "-o",
                                            str(tmp_path / "ds"), "--geojson", "x.geojson",
                                            "--classes", "Tumor"])  # fmt: skip
    assert result.exit_code != 0
