"""Class resolution: options, dataset.json, per-class tolerances."""

from __future__ import annotations

import json

import pytest

from medseg.errors import ConfigError, DatasetError
from medseg.evaluate.labels import (
    classes_from_dataset_json,
    parse_label_list,
    parse_region,
    parse_tolerance,
    resolve_classes,
    resolve_tolerance,
)


def test_parsers():
    assert parse_label_list("1, 2,3") == [1, 2, 3]
    assert parse_region("whole=1,2,3") == ("whole", (1, 2, 3))
    assert parse_tolerance("2") == 2.0
    assert parse_tolerance("1=2,tumour=0.5") == {"1": 2.0, "tumour": 0.5}
    for bad, parser in (("a,b", parse_label_list), ("=1", parse_region), ("1=x", parse_tolerance)):
        with pytest.raises(ConfigError):
            parser(bad)


def _write_dataset_json(folder, labels, **extra):
    """A minimal nnU-Net v2 dataset.json with the given ``labels`` entry."""
    meta = {"channel_names": {"0": "T1"}, "labels": labels, "numTraining": 1}
    meta |= {"file_ending": ".nii.gz", **extra}
    path = folder / "dataset.json"
    path.write_text(json.dumps(meta))
    return path


def test_label_dataset_json_gives_labels(tmp_path):
    path = _write_dataset_json(tmp_path, {"background": 0, "gm": 1, "wm": 2, "ignore": 3})
    dataset = classes_from_dataset_json(path)
    assert dataset == ({"gm": (1,), "wm": (2,)}, {}, 3)
    assert resolve_classes(None, None, dataset) == {"gm": (1,), "wm": (2,)}


def test_region_dataset_json_gives_regions(tmp_path):
    labels = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3, "ignore": 4}
    path = _write_dataset_json(tmp_path, labels, regions_class_order=[1, 2, 3])
    dataset = classes_from_dataset_json(path)
    regions = {"whole": (1, 2, 3), "core": (2, 3), "enhancing": (3,)}
    assert dataset == ({"enhancing": (3,)}, regions, 4)
    classes = resolve_classes(None, None, dataset)
    assert classes == regions  # each region scored once, "enhancing" included


@pytest.mark.parametrize(
    ("labels", "extra", "match"),
    [
        ({"background": 0, "a": "one"}, {}, "label 'a'"),
        ({"background": 0, "a": 1, "b": 3}, {}, "consecutive"),
        ({"background": 0, "whole": [1, 2]}, {}, "regions_class_order"),
        ({"a": 1}, {}, "background"),
    ],
)
def test_invalid_dataset_json_names_the_file(tmp_path, labels, extra, match):
    path = _write_dataset_json(tmp_path, labels, **extra)
    with pytest.raises(DatasetError, match=match) as info:
        classes_from_dataset_json(path)
    assert str(path) in str(info.value)


def test_dataset_json_without_nnunet_keys_is_rejected(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": {"background": 0, "a": 1}}))
    with pytest.raises(DatasetError, match="missing required key"):
        classes_from_dataset_json(path)


def test_resolution_order_and_tolerance_keys():
    dataset = ({"gm": (1,), "wm": (2,)}, {}, None)
    assert resolve_classes(None, None, dataset) == {"gm": (1,), "wm": (2,)}
    assert resolve_classes([2], None, dataset) == {"wm": (2,)}
    both = resolve_classes(None, {"brain": [1, 2]}, dataset)
    assert both == {"gm": (1,), "wm": (2,), "brain": (1, 2)}
    assert resolve_classes(None, None, None) is None
    assert resolve_tolerance({"1": 2.0, "brain": 3.0}, both) == {"gm": 2.0, "brain": 3.0}
    with pytest.raises(ConfigError, match="no class"):
        resolve_tolerance({"7": 1.0}, both)


def test_labels_by_name_come_from_dataset_json() -> None:
    from medseg.evaluate.labels import resolve_classes

    dataset = ({"liver": (1,), "tumour": (2,)}, {}, None)
    assert resolve_classes(["tumour", 1], None, dataset) == {"tumour": (2,), "liver": (1,)}
    with pytest.raises(ConfigError, match=r"not named in dataset\.json"):
        resolve_classes(["spleen"], None, dataset)
    with pytest.raises(ConfigError, match="not named"):
        resolve_classes(["liver"], None, None)
