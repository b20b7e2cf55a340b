"""Simulated users: clicks at the error's distance maximum, boxes, strokes inside regions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.interactive.simulate import (
    error_click,
    error_scribble,
    largest_error_component,
    ritm_click,
    simulate_box,
    simulate_scribble,
)


def test_click_lands_at_the_distance_maximum_of_the_largest_error(
    rng: np.random.Generator,
) -> None:
    ref = np.zeros((30, 40), bool)
    ref[5:25, 5:35] = True
    pred = ref.copy()
    pred[8:12, 8:12] = False  # small false negative
    pred[10:22, 20:32] = False  # large false negative: 12 x 12
    click = error_click(pred, ref, rng)
    assert click is not None
    assert click.positive
    # independent reference: SciPy's distance inside the largest component, padded
    component, _ = ndimage.label(pred != ref)
    sizes = np.bincount(component.ravel())[1:]
    largest = np.pad(component == np.argmax(sizes) + 1, 1)
    dist = ndimage.distance_transform_edt(largest)[1:-1, 1:-1]
    assert dist[click.point] == pytest.approx(dist.max())
    assert 10 <= click.point[0] < 22
    assert 20 <= click.point[1] < 32


def test_click_in_false_positive_is_negative(rng: np.random.Generator) -> None:
    ref = np.zeros((20, 20, 20), bool)
    pred = ref.copy()
    pred[5:12, 5:12, 5:12] = True
    click = error_click(pred, ref, rng)
    assert click is not None
    assert not click.positive
    assert click.point == (8, 8, 8)


def test_no_click_for_a_perfect_prediction(rng: np.random.Generator) -> None:
    ref = np.ones((5, 5), bool)
    assert error_click(ref, ref, rng) is None
    assert ritm_click(ref, ref, rng) is None


def test_largest_error_component_uses_26_connectivity() -> None:
    error = np.zeros((5, 5, 5), bool)
    error[1, 1, 1] = error[2, 2, 2] = True  # corner neighbours: one 26-component
    error[4, 4, 0] = True
    assert largest_error_component(error, np.zeros_like(error)).sum() == 2


def test_ritm_click_picks_the_larger_region(rng: np.random.Generator) -> None:
    ref = np.zeros((40, 40), bool)
    ref[5:15, 5:15] = True  # 10 x 10 missed
    pred = np.zeros_like(ref)
    pred[25:29, 25:29] = True  # 4 x 4 spurious
    click = ritm_click(pred, ref, rng)
    assert click is not None
    assert click.positive
    assert ref[click.point]


@pytest.mark.parametrize("seed", range(5))
def test_box_contains_the_object_plus_at_most_its_jitter(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = np.zeros((30, 512, 256), bool)
    ref[10:20, 100:200, 50:90] = True
    ref[12, 300, 60] = True  # an outlier off the median slice: not in the 2D box
    box = simulate_box(ref, rng, max_jitter=5)
    assert (box.lo[0], box.hi[0]) == (10, 19)  # z-extent of the object
    # in-plane: the tight box on the median slice (15), pushed out by 0-5 px * dim / 256
    assert 100 - 10 <= box.lo[1] <= 100
    assert 199 <= box.hi[1] <= 199 + 10
    assert 50 - 5 <= box.lo[2] <= 50
    assert 89 <= box.hi[2] <= 89 + 5


def test_2d_box_contains_the_object(rng: np.random.Generator) -> None:
    ref = np.zeros((64, 64), bool)
    ref[10:30, 20:40] = True
    box = simulate_box(ref, rng)
    assert box.lo[0] <= 10
    assert box.lo[1] <= 20
    assert box.hi[0] >= 29
    assert box.hi[1] >= 39
    assert box.lo[0] >= 9
    assert box.hi[1] <= 40


@pytest.mark.parametrize("kind", ["skeleton", "line", "contour"])
def test_scribbles_lie_inside_their_region(kind: str, rng: np.random.Generator) -> None:
    region = np.zeros((12, 40, 40), bool)
    grid = np.indices(region.shape)
    region[((grid[1] - 20) ** 2 + (grid[2] - 18) ** 2 < 100) & (grid[0] > 2)] = True
    stroke = simulate_scribble(region, rng, kind=kind)
    assert stroke is not None
    assert stroke.positive
    assert region[tuple(stroke.voxels.T)].all()
    assert len(set(stroke.voxels[:, 0].tolist())) == 1  # drawn on one slice


def test_error_scribble_marks_the_missed_part(rng: np.random.Generator) -> None:
    ref = np.zeros((30, 30), bool)
    ref[5:25, 5:25] = True
    pred = ref.copy()
    pred[5:25, 15:25] = False
    stroke = error_scribble(pred, ref, rng)
    assert stroke is not None
    assert stroke.positive
    missed = ref & ~pred
    assert missed[tuple(stroke.voxels.T)].all()


def test_box_slice_holds_the_object_when_slices_have_gaps(rng: np.random.Generator) -> None:
    ref = np.zeros((10, 20, 20), bool)
    ref[2, 3:6, 3:6] = True
    ref[7, 10:15, 10:15] = True  # object on slices 2 and 7 only: the median 4.5 is empty
    box = simulate_box(ref, rng, max_jitter=0)
    assert (box.lo[0], box.hi[0]) == (2, 7)
    assert (box.lo[1:], box.hi[1:]) == ((10, 10), (14, 14))
