"""Class names with sides and parts (TotalSegmentator style): lobes, sides, groups, nodules."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.io import Image
from medseg.text import AmbiguousQuery, build_scene, find

NAMES = {
    1: "lung_upper_lobe_left",
    2: "lung_lower_lobe_left",
    3: "lung_upper_lobe_right",
    4: "lung_middle_lobe_right",
    5: "lung_lower_lobe_right",
    6: "kidney_left",
    7: "kidney_right",
    8: "lung_nodule",
}


@pytest.fixture(scope="module")
def scene_and_labels():  # type: ignore[no-untyped-def]
    """Left lobes at high x index (patient left in LPS storage), right lobes at low x."""
    labels = np.zeros((20, 20, 40), np.uint8)
    labels[10:18, 2:18, 22:38] = 1
    labels[2:10, 2:18, 22:38] = 2
    labels[12:18, 2:18, 2:18] = 3
    labels[7:12, 2:18, 2:18] = 4
    labels[2:7, 2:18, 2:18] = 5
    labels[0:2, 5:8, 30:33] = 6
    labels[0:2, 5:8, 5:8] = 7
    labels[14:16, 5:7, 25:27] = 8  # in the left upper lobe
    labels[3:5, 5:7, 5:7] = 8  # in the right lower lobe
    return build_scene(Image.from_array(labels[None]), names=NAMES), labels


@pytest.mark.parametrize(
    ("phrase", "values"),
    [
        ("the left lung", {1, 2}),
        ("the right lung", {3, 4, 5}),
        ("the left upper lobe", {1}),
        ("the upper lobe on the left", {1}),
        ("the middle lobe", {4}),
        ("the right lower lobe", {5}),
        ("the lower lobes", {2, 5}),
        ("the lungs", {1, 2, 3, 4, 5}),
        ("the lung", {1, 2, 3, 4, 5}),
        ("the left lung and the right kidney", {1, 2, 7}),
        ("the largest lobe", {2}),  # 2048 voxels; the left upper lobe holds a nodule
        ("the smallest right lobe", {5}),
    ],
)
def test_structure_phrases(scene_and_labels, phrase: str, values: set[int]) -> None:  # type: ignore[no-untyped-def]
    scene, labels = scene_and_labels
    assert np.array_equal(find(scene, phrase).mask, np.isin(labels, list(values)))


@pytest.mark.parametrize(
    ("phrase", "box"),
    [
        ("nodules in the left lung", (slice(14, 16), slice(5, 7), slice(25, 27))),
        ("the nodule in the right lower lobe", (slice(3, 5), slice(5, 7), slice(5, 7))),
        ("left lung nodules", (slice(14, 16), slice(5, 7), slice(25, 27))),
    ],
)
def test_nodules_by_lobe(scene_and_labels, phrase: str, box: tuple[slice, ...]) -> None:  # type: ignore[no-untyped-def]
    scene, labels = scene_and_labels
    expected = np.zeros(labels.shape, bool)
    expected[box] = True
    assert np.array_equal(find(scene, phrase).mask, expected)


@pytest.mark.parametrize("phrase", ["the upper lobe", "the kidney", "the lower lobe"])
def test_side_only_differences_stay_ambiguous(scene_and_labels, phrase: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AmbiguousQuery):
        find(scene_and_labels[0], phrase)


def test_group_is_one_structure_in_the_explanation(scene_and_labels) -> None:  # type: ignore[no-untyped-def]
    (selected,) = find(scene_and_labels[0], "the left lung").to_dict()["clauses"][0]["selected"]
    assert selected["class"] == "left lung"
    assert selected["side"] == "left"
