"""MultiSession: several labels in one label map, each with its own prompts, undo across them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medseg.errors import ConfigError, GeometryError
from medseg.interactive.multi import MultiSession, changed_box
from medseg.interactive.prompts import Box, Click, render_prompts


class BoxEngine:
    """Object = inside every box, plus positive clicks/strokes, minus negative ones (exact)."""

    name = "box"

    def predict(self, roi_image, prompts, prev_mask, *, spacing):
        maps = render_prompts(prompts, roi_image.shape[1:])
        prob = maps.box | maps.positive
        if prev_mask is not None and not maps.has_box:
            prob = prob | prev_mask
        return (prob & ~maps.negative).astype(np.float32)


@pytest.fixture
def multi() -> MultiSession:
    return MultiSession(np.zeros((12, 20, 20), dtype=np.float32), BoxEngine())


def test_two_labels_keep_their_own_prompts(multi):
    multi.add_box(1, (2, 2, 2), (5, 6, 7))
    first = multi.predict(1)
    multi.add_box(2, (8, 10, 10), (9, 15, 12))
    second = multi.predict(2)
    expected = np.zeros((12, 20, 20), dtype=np.uint8)
    expected[2:6, 2:7, 2:8] = 1
    expected[8:10, 10:16, 10:13] = 2
    np.testing.assert_array_equal(multi.labels, expected)
    assert first.box == (slice(2, 6), slice(2, 7), slice(2, 8))
    assert second.box == (slice(8, 10), slice(10, 16), slice(10, 13))
    assert (second.values == 2).all()
    assert multi.objects == (1, 2)
    assert multi.prompts(1) == (Box((2, 2, 2), (5, 6, 7)),)
    assert multi.prompts(2) == (Box((8, 10, 10), (9, 15, 12)),)


def test_other_labels_are_protected_unless_overwrite():
    image = np.zeros((12, 20, 20), dtype=np.float32)
    for overwrite, expected in ((False, 1), (True, 2)):
        multi = MultiSession(image, BoxEngine(), overwrite=overwrite)
        multi.add_box(1, (2, 2, 2), (5, 6, 7))
        multi.predict(1)
        multi.add_click(2, (3, 3, 3))
        multi.add_click(2, (9, 9, 9))
        multi.predict(2)
        assert multi.labels[3, 3, 3] == expected
        assert multi.labels[9, 9, 9] == 2
        # the latest edit paints over label 2 only when overwriting
        multi.add_click(1, (9, 9, 9))
        multi.predict(1)
        assert multi.labels[9, 9, 9] == (1 if overwrite else 2)


def test_undo_walks_back_across_labels(multi):
    multi.add_box(1, (2, 2, 2), (5, 6, 7))
    multi.predict(1)
    after_one = multi.labels
    multi.add_click(2, (3, 3, 3))
    multi.predict(2)
    multi.add_click(1, (3, 4, 4), positive=False)
    multi.predict(1)
    assert multi.labels[3, 4, 4] == 0
    update = multi.undo()
    assert update.label == 1
    assert multi.labels[3, 4, 4] == 1
    multi.undo()
    np.testing.assert_array_equal(multi.labels, after_one)
    assert multi.prompts(2) == ()
    multi.undo()
    assert not multi.labels.any()
    assert multi.undo() is None


def test_start_from_model_labels_then_refine_one_class(multi):
    model = np.zeros((12, 20, 20), dtype=np.uint8)
    model[1:4, 1:4, 1:4] = 1
    model[6:9, 6:9, 6:9] = 3
    multi.start_from(model)
    assert multi.objects == (1, 3)
    multi.add_click(3, (7, 7, 7), positive=False)
    update = multi.predict(3)
    expected = model.copy()
    expected[7, 7, 7] = 0
    np.testing.assert_array_equal(multi.labels, expected)
    assert update.box == (slice(7, 8), slice(7, 8), slice(7, 8))
    np.testing.assert_array_equal(update.values, [[[0]]])


def test_clear_and_discard_pending(multi):
    multi.add_box(1, (2, 2, 2), (5, 6, 7))
    multi.predict(1)
    multi.add_click(1, (9, 9, 9))
    multi.clear(1)
    assert not multi.labels.any()
    assert multi.prompts(1) == (Box((2, 2, 2), (5, 6, 7)),)
    multi.undo()
    assert (multi.labels == 1).sum() == 4 * 5 * 6
    multi.add_click(1, (9, 9, 9))
    multi.discard_pending(1)
    assert Click((9, 9, 9)) not in multi.prompts(1)


@pytest.mark.parametrize("label", [0, 256, -1, 1.5, True])
def test_bad_label_is_rejected(multi, label):
    with pytest.raises(GeometryError, match="label"):
        multi.add_click(label, (1, 1, 1))


def test_start_from_rejects_wrong_shape(multi):
    with pytest.raises(GeometryError, match="shape"):
        multi.start_from(np.zeros((3, 3, 3), dtype=np.uint8))


def test_changed_box_matches_argwhere():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, (6, 7, 8))
    b = a.copy()
    b[2, 3, 1] += 1
    b[4, 1, 6] += 1
    coords = np.argwhere(a != b)
    expected = tuple(slice(lo, hi + 1) for lo, hi in zip(coords.min(0), coords.max(0), strict=True))
    assert changed_box(a, b) == expected
    assert changed_box(a, a) == (slice(0, 0),) * 3


def test_restore_a_model_class_after_edits(multi):
    model = np.zeros((12, 20, 20), dtype=np.uint8)
    model[1:4, 1:4, 1:4] = 1
    model[6:9, 6:9, 6:9] = 2
    multi.start_from(model)
    multi.add_click(2, (7, 7, 7), positive=False)
    multi.predict(2)
    multi.add_click(2, (11, 19, 19))
    multi.predict(2)
    update = multi.restore(2, model == 2)
    np.testing.assert_array_equal(multi.labels, model)
    assert update.box == (slice(7, 12), slice(7, 20), slice(7, 20))
    multi.undo()
    assert multi.labels[11, 19, 19] == 2
    assert multi.labels[7, 7, 7] == 0


class FakePredictor:
    """A trained model's interface as add_model_class uses it; counts its predictions."""

    def __init__(self, label_map: np.ndarray, names: dict[str, int]) -> None:
        self.model = SimpleNamespace(labels=names)
        self.label_map = label_map
        self.calls = 0

    def predict_image(self, image):
        self.calls += 1
        assert image.spatial_shape == self.label_map.shape
        return SimpleNamespace(labels=image.with_array(self.label_map[None]))


def test_add_model_class_by_name_then_refine(multi):
    model_map = np.zeros((12, 20, 20), dtype=np.uint8)
    model_map[1:4, 1:4, 1:4] = 1
    model_map[6:9, 6:9, 6:9] = 2
    model = FakePredictor(model_map, {"liver": 1, "spleen": 2})
    update = multi.add_model_class(5, model, "spleen")
    assert update.label == 5
    np.testing.assert_array_equal(multi.labels, np.where(model_map == 2, 5, 0))
    multi.add_model_class(7, model, 1)
    assert model.calls == 1  # the model predicts once per session
    np.testing.assert_array_equal(multi.mask(7), model_map == 1)
    assert multi.objects == (5, 7)
    multi.add_click(5, (7, 7, 7), positive=False)
    multi.predict(5)
    assert multi.labels[7, 7, 7] == 0
    assert multi.labels[6, 6, 6] == 5
    multi.undo()
    multi.undo()
    assert not multi.mask(7).any()
    assert (multi.mask(5) == (model_map == 2)).all()


@pytest.mark.parametrize("name", ["kidney", 3])
def test_add_model_class_unknown_class_names_the_classes(multi, name):
    model = FakePredictor(np.zeros((12, 20, 20), dtype=np.uint8), {"liver": 1})
    with pytest.raises(ConfigError, match="liver"):
        multi.add_model_class(1, model, name)
    assert model.calls == 0


def test_default_engine_is_the_universal_model():
    multi = MultiSession(np.zeros((8, 32, 32), dtype=np.float32))
    assert multi.session(1).engine.name == "universal"
