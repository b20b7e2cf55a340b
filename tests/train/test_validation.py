"""Sliding-window validation of whole cases against known-perfect and known-wrong predictors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from medseg.train.validation import class_names, mean_over_cases, validate_cases


class Oracle(nn.Module):
    """Logits that make argmax return round(intensity): perfect when image == label."""

    def __init__(self, classes: int, regions: bool = False) -> None:
        super().__init__()
        self.classes, self.regions = classes, regions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.regions:  # whole = label >= 1, core = label == 2
            return torch.cat([(x - 0.5) * 40, (x - 1.5) * 40], dim=1)
        centres = torch.arange(self.classes, dtype=x.dtype).view(1, -1, *[1] * (x.ndim - 2))
        return -((x - centres) ** 2) * 100


def _clean_source(array_source, shape=(20, 20, 20)):
    label = np.zeros((1, *shape), np.int16)
    label[0, 4:12, 5:15, 3:9] = 1
    label[0, 6:9, 7:10, 4:7] = 2
    return array_source({"a": (label.astype(np.float32), label)})


def test_perfect_predictor_scores_one(array_source, plan) -> None:
    source = _clean_source(array_source)
    scores = validate_cases(Oracle(3), source, ["a"], plan, "3d", device=torch.device("cpu"))
    assert scores == {"a": {"ball": pytest.approx(1.0), "core": pytest.approx(1.0)}}


def test_wrong_class_and_absent_class(array_source, plan) -> None:
    source = _clean_source(array_source)
    shifted = validate_cases(
        _Shift(Oracle(3)), source, ["a"], plan, "3d", device=torch.device("cpu")
    )["a"]
    label = source.cases["a"][1][0]
    pred = np.where(label == 1, 2, np.where(label == 2, 0, 0))  # 1 -> 2, 2 -> 0
    expected_core = (
        2 * ((pred == 2) & (label == 2)).sum() / ((pred == 2).sum() + (label == 2).sum())
    )
    assert shifted["ball"] == 0.0
    assert shifted["core"] == pytest.approx(expected_core)
    empty = array_source(
        {"e": (np.zeros((1, 20, 20, 20), np.float32), np.zeros((1, 20, 20, 20), np.int16))}
    )
    nothing = validate_cases(Oracle(3), empty, ["e"], plan, "3d", device=torch.device("cpu"))
    assert math.isnan(nothing["e"]["ball"])


class _Shift(nn.Module):
    """Predicts label + 1 (mod 3): every foreground voxel gets the wrong class."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.remainder(x + 1, 3))


def test_regions_ignore_and_2d(array_source, tiny_plan) -> None:
    source = _clean_source(array_source)
    regions = tiny_plan(regions={"whole": (1, 2), "core": (2,)})
    assert [n for _, n in class_names(regions)] == ["whole", "core"]
    scores = validate_cases(
        Oracle(2, regions=True), source, ["a"], regions, "3d", device=torch.device("cpu")
    )
    assert scores["a"] == {"whole": pytest.approx(1.0), "core": pytest.approx(1.0)}
    label = source.cases["a"][1].copy()
    image = label.astype(np.float32)
    label[0, 4:6] = 3  # ignored voxels that the predictor gets "wrong" (intensity 1 or 2 here)
    ignoring = array_source({"a": (image, label)})
    plan_ignore = tiny_plan(ignore=3)
    scores = validate_cases(
        Oracle(3), ignoring, ["a"], plan_ignore, "3d", device=torch.device("cpu")
    )
    assert scores["a"]["ball"] == pytest.approx(1.0)
    flat = tiny_plan(ndim=2)
    scores = validate_cases(Oracle(3), source, ["a"], flat, "2d", device=torch.device("cpu"))
    assert scores["a"]["core"] == pytest.approx(1.0)


def test_predicted_label_maps_are_handed_back(array_source, plan, tiny_plan) -> None:
    source = _clean_source(array_source)
    label = source.cases["a"][1][0]
    kept: dict[str, np.ndarray] = {}
    validate_cases(_Shift(Oracle(3)), source, ["a"], plan, "3d", device=torch.device("cpu"),
                   predictions=kept)  # fmt: skip
    assert kept["a"].dtype == np.uint8
    np.testing.assert_array_equal(kept["a"], (label + 1) % 3)  # the argmax, not the reference
    regions = tiny_plan(regions={"whole": (1, 2), "core": (2,)})
    kept.clear()
    validate_cases(Oracle(2, regions=True), source, ["a"], regions, "3d",
                   device=torch.device("cpu"), predictions=kept)  # fmt: skip
    np.testing.assert_array_equal(kept["a"], label)  # regions painted in region_order


def test_mean_over_cases_ignores_nan() -> None:
    per_case = {"a": {"x": 0.5, "y": float("nan")}, "b": {"x": 1.0, "y": float("nan")}}
    mean = mean_over_cases(per_case)
    assert mean["x"] == pytest.approx(0.75)
    assert math.isnan(mean["y"])
