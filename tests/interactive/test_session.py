"""Session: prompt history, undo/reset, region of interest, prompts on any axis."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.errors import GeometryError
from medseg.interactive.prompts import Box, Click
from medseg.interactive.session import Session, region_of_interest
from medseg.io import Image


class RecordingEngine:
    """Returns the positive prompt voxels as the mask and records what it was given."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def predict(self, roi_image, prompts, prev_mask, *, spacing):
        from medseg.interactive.prompts import render_prompts

        self.calls.append((roi_image.shape, list(prompts), prev_mask, spacing))
        return render_prompts(prompts, roi_image.shape[1:]).positive.astype(np.float32)


def test_click_on_a_sagittal_slice_segments_the_right_voxel() -> None:
    engine = RecordingEngine()
    session = Session(np.zeros((20, 30, 40)), engine)
    session.add_click((5, 7), axis=2, index=33)
    mask = session.predict().mask
    assert np.argwhere(mask).tolist() == [[5, 7, 33]]


def test_engine_sees_prompts_in_roi_coordinates() -> None:
    engine = RecordingEngine()
    session = Session(np.zeros((200, 200)), engine, min_size=10, min_margin=4, margin=0.0)
    session.add_click((100, 120))
    prediction = session.predict()
    assert prediction.roi == (slice(95, 106), slice(115, 126))
    shape, prompts, prev, _ = engine.calls[0]
    assert shape == (1, 11, 11)
    assert prompts == [Click((5, 5), True)]
    assert prev is None


def test_region_of_interest_pads_and_clips() -> None:
    roi = region_of_interest([Box((10, 10), (29, 49))], None, (100, 60), min_size=0)
    # extent 20 x 40 -> padded by max(0.25 * extent, 8): 8 and 10 voxels
    assert roi == (slice(2, 38), slice(0, 60))


def test_undo_restores_prompts_and_mask_and_reset_clears() -> None:
    session = Session(np.zeros((10, 10)), RecordingEngine())
    session.add_click((2, 2))
    first = session.predict().mask
    session.add_click((7, 7))
    second = session.predict().mask
    assert second.sum() == 2
    session.undo()
    assert session.prompts == (Click((2, 2), True),)
    assert np.array_equal(session.mask, first)  # the mask from before the undone prompt
    session.undo()
    assert session.prompts == ()
    assert not session.mask.any()
    session.add_click((3, 3))
    session.reset()
    assert session.prompts == ()
    assert not session.mask.any()


def test_set_mask_is_passed_as_previous_mask_and_undone() -> None:
    engine = RecordingEngine()
    session = Session(np.zeros((12, 12)), engine, min_size=12)
    initial = np.zeros((12, 12), bool)
    initial[3:6, 3:6] = True
    session.set_mask(initial)
    session.add_click((8, 8))
    session.predict()
    assert np.array_equal(engine.calls[0][2], initial)
    session.undo()
    session.undo()
    assert not session.mask.any()


def test_geometry_is_passed_to_the_engine() -> None:
    engine = RecordingEngine()
    image = Image.from_array(np.zeros((1, 8, 8, 8)), spacing=(3.0, 0.8, 0.8))
    session = Session(image, engine)
    session.add_box((2, 2), (5, 5), axis=0, index=4)
    session.predict()
    assert engine.calls[0][3] == (3.0, 0.8, 0.8)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.add_click((50, 1, 1)), "outside"),
        (lambda s: s.add_click((1, 1)), "outside"),
        (lambda s: s.add_click((1, 1), axis=0), "both axis and index"),
        (lambda s: s.set_mask(np.zeros((3, 3))), "mask shape"),
        (lambda s: s.add_scribble(), "either polyline"),
        (lambda s: s.add_box((20, 20, 20), (30, 30, 30)), "outside"),
        (lambda s: s.add_box((1, 1), (3, 3)), "outside"),
    ],
)
def test_bad_prompts_raise_geometry_errors(call, match: str) -> None:
    session = Session(np.zeros((10, 10, 10)), RecordingEngine())
    with pytest.raises(GeometryError, match=match):
        call(session)
