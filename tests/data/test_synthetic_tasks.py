"""The generated training tasks: deterministic by seed, valid label maps, the promised shapes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.data import synthetic_tasks as st
from medseg.errors import DatasetError


@pytest.mark.parametrize("kind", st.TASK_KINDS)
def test_same_seed_and_index_give_identical_tasks(kind: str) -> None:
    a = st.generate_task(3, 7, kinds=(kind,))
    b = st.generate_task(3, 7, kinds=(kind,))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.spacing == b.spacing
    assert a.source == b.source
    c = st.generate_task(3, 8, kinds=(kind,))
    assert c.image.shape != a.image.shape or not np.array_equal(c.image, a.image)


@pytest.mark.parametrize("kind", st.TASK_KINDS)
def test_tasks_are_valid_label_maps_with_finite_images(kind: str) -> None:
    for index in range(4):
        task = st.generate_task(0, index, kinds=(kind,))
        ndim = 3 if kind == "shapes3d" else 2
        assert task.image.ndim == task.labels.ndim == len(task.spacing) == ndim
        assert task.image.shape == task.labels.shape
        assert task.image.dtype == np.float32
        assert np.isfinite(task.image).all()
        assert task.image.std() > 0
        values, counts = np.unique(task.labels, return_counts=True)
        foreground = values[values > 0]
        assert foreground.size >= 1
        # labels are numbered 1..n without gaps, none smaller than MIN_VOXELS
        np.testing.assert_array_equal(foreground, np.arange(1, foreground.size + 1))
        assert counts[values > 0].min() >= st.MIN_VOXELS
        assert foreground.size <= st.MAX_LABELS


def test_3d_tasks_have_anisotropic_spacing_for_some_seeds() -> None:
    spacings = {st.generate_task(1, i, kinds=("shapes3d",)).spacing for i in range(4)}
    assert any(s[0] > s[1] for s in spacings)
    assert all(s[1:] == (1.0, 1.0) for s in spacings)


def test_shell_is_a_thin_rim_around_its_core() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros((60, 60), np.int32)
    st._add_shell(labels, (1.0, 1.0), rng)
    rim, core = labels == 1, labels == 2
    assert rim.any()
    assert core.any()
    assert not (rim & core).any()
    # the core touches nothing but the rim: growing it by one pixel lands on the rim or itself
    grown = ndimage.binary_dilation(core) & ~core
    assert rim[grown].all()


def test_tube_is_thin_compared_to_its_length() -> None:
    rng = np.random.default_rng(2)
    labels = np.zeros((120, 120), np.int32)
    st._add_tube(labels, (1.0, 1.0), rng)
    tube = labels == 1
    assert tube.any()
    thickness = 2 * ndimage.distance_transform_edt(tube).max()
    length = np.ptp(np.argwhere(tube), axis=0).max()
    assert thickness <= 12  # radius at most 4 mm (edt counts to the first outside pixel)
    assert length > 2 * thickness


def test_scattered_class_has_several_pieces() -> None:
    rng = np.random.default_rng(1)
    labels = np.zeros((40, 80, 80), np.int32)
    st._add_scattered(labels, (2.0, 1.0, 1.0), rng)
    _, pieces = ndimage.label(labels == 1)
    assert pieces >= 2


def test_held_out_images_are_not_used_for_training() -> None:
    assert "coins" not in st.PHOTO_NAMES
    assert "shepp_logan_phantom" not in st.PHOTO_NAMES
    photos = st.bundled_photos()
    assert set(photos) == set(st.PHOTO_NAMES)
    assert all(p.ndim == 2 and p.min() >= 0 and p.max() <= 1 for p in photos.values())


def test_unknown_kind_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="unknown task kinds"):
        st.generate_task(0, 0, kinds=("mri",))
