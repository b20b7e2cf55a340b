"""The random-walker engine segments bright disks and spheres from one prompt."""

from __future__ import annotations

import numpy as np

from medseg.interactive.classical import RandomWalkerEngine
from medseg.interactive.session import Session


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_one_click_segments_a_disk(disk_image: tuple[np.ndarray, np.ndarray]) -> None:
    image, disk = disk_image
    session = Session(image, RandomWalkerEngine())
    session.add_click((30, 34))
    prediction = session.predict()
    assert _dice(prediction.mask, disk) > 0.9
    assert prediction.probabilities.dtype == np.float32
    assert prediction.probabilities.min() >= 0.0
    assert prediction.probabilities.max() <= 1.0


def test_one_box_segments_a_sphere(sphere_image: tuple[np.ndarray, np.ndarray]) -> None:
    image, sphere = sphere_image
    session = Session(image, RandomWalkerEngine())
    session.add_box((3, 6, 4), (19, 22, 20))
    assert _dice(session.predict().mask, sphere) > 0.9


def test_box_on_a_coronal_slice_segments_a_sphere(
    sphere_image: tuple[np.ndarray, np.ndarray],
) -> None:
    image, sphere = sphere_image
    session = Session(image, RandomWalkerEngine())
    session.add_box((3, 4), (19, 20), axis=1, index=14)
    assert _dice(session.predict().mask, sphere) > 0.9


def test_downsampled_walker_still_segments(sphere_image: tuple[np.ndarray, np.ndarray]) -> None:
    image, sphere = sphere_image
    session = Session(image, RandomWalkerEngine(max_voxels=4000))
    session.add_click((11, 14, 12))
    assert _dice(session.predict().mask, sphere) > 0.8


def test_negative_click_removes_a_wrong_region(disk_image: tuple[np.ndarray, np.ndarray]) -> None:
    image, disk = disk_image
    session = Session(image, RandomWalkerEngine())
    wrong = disk.copy()
    wrong[50:60, 50:60] = True  # a model's false positive far from the disk
    session.set_mask(wrong)
    session.add_click((55, 55), positive=False)
    mask = session.predict().mask
    assert not mask[55, 55]
    assert _dice(mask, disk) > 0.9
