"""The server's parts on their own: config, case listing, run-length encoding, engine choice."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import ConfigError, DatasetError, ModelFormatError
from medseg.io import Image, write_image
from medseg.server.catalog import CaseCatalog, label_colour
from medseg.server.config import ServeConfig
from medseg.server.encoding import box_json, rle_decode, rle_encode
from medseg.server.errors import NotFoundError


def test_config_round_trip_and_errors(tmp_path):
    config = ServeConfig(data=tmp_path, model=tmp_path / "m", token="secret-token", max_sessions=3)
    values = config.to_json()
    assert values["token"] is None
    assert values["data"] == str(tmp_path)
    assert ServeConfig.from_json(values) == ServeConfig(
        data=tmp_path, model=tmp_path / "m", max_sessions=3
    )
    assert config.output_dir == tmp_path / "labelsCorrected"
    with pytest.raises(ConfigError, match="unknown serve setting"):
        ServeConfig.from_json({"data": str(tmp_path), "colour": 1})
    with pytest.raises(ConfigError, match="next_order"):
        ServeConfig(data=tmp_path, next_order="best")
    with pytest.raises(ConfigError, match="max_sessions"):
        ServeConfig(data=tmp_path, max_sessions=0)
    with pytest.raises(ConfigError, match="idle_seconds"):
        ServeConfig(data=tmp_path, idle_seconds=0)


def test_rle_against_itertools_groupby():
    from itertools import groupby

    rng = np.random.default_rng(0)
    values = (rng.random((5, 6, 7)) > 0.7).astype(np.uint8) * rng.integers(1, 4, (5, 6, 7))
    runs = rle_encode(values)
    expected = [
        x for key, group in groupby(values.ravel().tolist()) for x in (key, len(list(group)))
    ]
    assert runs == expected
    np.testing.assert_array_equal(rle_decode(runs, values.shape), values)
    assert rle_encode(np.zeros((0, 3), np.uint8)) == []
    assert box_json((slice(1, 4), slice(0, 2))) == [[1, 4], [0, 2]]


def _write(path, shape=(4, 5, 6)):
    write_image(Image.from_array(np.zeros((1, *shape), np.float32)), path)


def test_catalog_of_a_folder_and_its_errors(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    _write(folder / "b.nii.gz")
    _write(folder / "a_0000.nii.gz")
    _write(folder / "a_0001.nii.gz")
    (folder / "notes.txt").write_text("not an image")
    catalog = CaseCatalog(folder, model_labels={"background": 0, "liver": 1, "spleen": 2})
    assert catalog.ids == ["a", "b"]
    assert len(catalog.get("a").paths) == 2
    assert [(x.value, x.name) for x in catalog.labels] == [(1, "liver"), (2, "spleen")]
    assert catalog.label_path("a") is None
    for bad in ("c", "../scans/b", "a_0000"):
        with pytest.raises(NotFoundError, match="unknown case"):
            catalog.get(bad)
    assert [x.name for x in CaseCatalog(folder).labels] == ["object"]
    with pytest.raises(DatasetError, match="not a folder"):
        CaseCatalog(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no image"):
        CaseCatalog(empty)


def test_duplicate_ids_across_train_and_test(dataset):
    _write(dataset / "imagesTs" / "case0_0000.nii.gz")
    with pytest.raises(DatasetError, match="appears twice"):
        CaseCatalog(dataset)


def test_label_colours_are_distinct():
    colours = [label_colour(v) for v in range(1, 40)]
    assert len(set(colours)) == len(colours)
    assert all(0 <= c <= 255 for colour in colours for c in colour)


def test_engine_choice(monkeypatch):
    from medseg.interactive.engine import UNIVERSAL
    from medseg.interactive.learned import LearnedEngine
    from medseg.server.app import resolve_engine

    assert resolve_engine("classical").name == "classical"
    # the default and both spellings of the shipped model load the package's weights
    for spec in (None, "universal", "learned"):
        engine = resolve_engine(spec)
        assert isinstance(engine, LearnedEngine)
        assert engine.name == UNIVERSAL
    with pytest.raises(ModelFormatError):
        resolve_engine("no-such-model-folder")

    def no_weights(spec):
        if str(spec) == UNIVERSAL:
            raise ModelFormatError("no shipped model")
        from medseg.interactive.classical import RandomWalkerEngine

        return RandomWalkerEngine()

    monkeypatch.setattr("medseg.interactive.engine.load_engine", no_weights)
    assert resolve_engine(None).name == "classical"
