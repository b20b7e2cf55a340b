"""Class resolution: options, dataset.json, per-class tolerances."""

from __future__ import annotations

import json

import pytest

from medseg.errors import ConfigError, DatasetError
from medseg.evaluate.labels import (
    parse_label_list,
    parse_region,
    parse_tolerance,
    read_dataset_json,
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


def test_dataset_json_with_regions_and_ignore(tmp_path):
    path = tmp_path / "dataset.json"
    labels = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "ignore": 4}
    path.write_text(json.dumps({"labels": labels}))
    assert read_dataset_json(path) == ({}, {"whole": (1, 2, 3), "core": (2, 3)}, 4)
    path.write_text(json.dumps({"labels": {"a": "one"}}))
    with pytest.raises(DatasetError, match="label 'a'"):
        read_dataset_json(path)


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
