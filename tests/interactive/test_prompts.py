"""Prompt objects: slice-drawn prompts map to the right voxels, rasterisation is exact."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import GeometryError
from medseg.interactive.prompts import Box, Click, Scribble, render_prompts


@pytest.mark.parametrize(
    ("axis", "expected"),
    [(0, (7, 3, 4)), (1, (3, 7, 4)), (2, (3, 4, 7))],
)
def test_click_on_slice_inserts_the_slice_index(axis: int, expected: tuple[int, ...]) -> None:
    assert Click.on_slice(axis, 7, (3, 4)).point == expected


def test_click_on_a_sagittal_slice_marks_that_voxel() -> None:
    click = Click.on_slice(2, 40, (10, 20), positive=False)
    maps = render_prompts([click], (30, 40, 50))
    assert np.argwhere(maps.negative).tolist() == [[10, 20, 40]]
    assert not maps.positive.any()


def test_box_on_slice_has_a_plane_axis_and_fills_one_slice() -> None:
    box = Box.on_slice(1, 5, (2, 3), (4, 6))
    assert box.lo == (2, 5, 3)
    assert box.hi == (4, 5, 6)
    assert box.plane_axis == 1
    maps = render_prompts([box], (10, 10, 10))
    assert maps.has_box
    assert maps.box.sum() == 3 * 1 * 4
    assert maps.box[2:5, 5, 3:7].all()


def test_box_rejects_inverted_corners() -> None:
    with pytest.raises(GeometryError, match="lo <= hi"):
        Box((5, 5), (4, 6))


def test_polyline_scribble_covers_the_line_with_its_width() -> None:
    stroke = Scribble.from_polyline([(10, 5), (10, 25)], shape=(20, 30), width=3)
    mask = render_prompts([stroke], (20, 30)).positive
    assert mask[10, 5:26].all()
    assert mask[9, 10]
    assert mask[11, 10]
    assert not mask[8, 10]
    assert not mask[12, 10]


def test_scribble_drawn_on_a_slice_stays_in_that_slice() -> None:
    stroke = Scribble.on_slice(0, 4, [(2, 2), (2, 12)], shape=(8, 16, 16), width=5)
    assert set(stroke.voxels[:, 0].tolist()) == {4}
    assert stroke.voxels[:, 1].min() == 0  # width 5 reaches 2 px either side, row 2 - 2 = 0


def test_scribble_from_mask_and_shift() -> None:
    painted = np.zeros((6, 6), dtype=bool)
    painted[2, 1:4] = True
    stroke = Scribble.from_mask(painted, positive=False).shifted((1, 1))
    assert stroke.voxels.tolist() == [[1, 0], [1, 1], [1, 2]]
    assert stroke.bounds() == ((1, 0), (1, 2))


def test_render_clips_prompts_outside_the_grid() -> None:
    maps = render_prompts([Click((-1, 3)), Box((-5, -5), (1, 1))], (4, 4))
    assert not maps.positive.any()
    assert maps.box.sum() == 4


def test_polyline_outside_the_image_is_an_error() -> None:
    with pytest.raises(GeometryError, match="outside"):
        Scribble.from_polyline([(50, 50), (60, 60)], shape=(10, 10), width=1)
