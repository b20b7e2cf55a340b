"""Preprocess a case and bring predictions back: shapes, spacing and exact geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg._config import from_jsonable, to_jsonable
from medseg.io import Image
from medseg.plan import apply_overrides
from medseg.preprocess import (
    CaseProperties,
    preprocess_case,
    preprocess_image,
    restore_to_original,
)


def dice(a, b, value):
    a, b = a == value, b == value
    return 2 * np.sum(a & b) / (a.sum() + b.sum())


def one_hot(label, k, *, dtype=np.float32):
    return np.stack([(label == i).astype(dtype) for i in range(k)])


def test_preprocess_crops_normalises_resamples(case_image, plan):
    image, label = case_image
    array, lab, props = preprocess_case(image, label, plan, "3d", case_id="c0")
    nz = np.argwhere(image.array[0] != 0)
    expected_crop = tuple(int(v) for v in nz.max(0) - nz.min(0) + 1)
    assert props.shape_after_crop == expected_crop
    expected = tuple(
        round(n * s / t)
        for n, s, t in zip(expected_crop, image.spacing, (1.5, 1.2, 1.2), strict=True)
    )
    assert array.shape == (1, *expected)
    assert lab.shape == (1, *expected)
    assert array.dtype == np.float32
    assert lab.dtype == np.uint8
    assert props.spacing_after_resampling == pytest.approx((1.5, 1.2, 1.2), rel=0.05)
    assert set(np.unique(lab)) == {0, 1, 2}
    image_only, props2 = preprocess_image(image, plan, "3d", case_id="c0")
    np.testing.assert_array_equal(image_only, array)
    assert props2 == props


@pytest.mark.parametrize("config", ["3d", "2d"])
def test_round_trip_restores_labels_and_exact_geometry(case_image, plan, config):
    image, label = case_image
    _, lab, props = preprocess_case(image, label, plan, config)
    probs = one_hot(lab[0], 3)
    restored = restore_to_original(probs, props)
    assert restored.array.shape == (1, *image.spatial_shape)
    assert restored.array.dtype == np.uint8
    assert restored.spacing == image.spacing
    assert restored.origin == image.origin
    np.testing.assert_array_equal(restored.direction, image.direction)
    for value in (1, 2):
        assert dice(restored.array[0], label, value) > 0.9


def test_round_trip_with_separate_axis_and_torch_float16(case_image, plan):
    image, label = case_image
    aniso = apply_overrides(plan, {"3d.separate_axis": 0})
    _, lab, props = preprocess_case(image, label, aniso, "3d")
    assert props.separate_axis == 0
    probs = torch.from_numpy(one_hot(lab[0], 3)).half()
    restored = restore_to_original(probs, props, slab=2)
    for value in (1, 2):
        assert dice(restored.array[0], label, value) > 0.9


def test_restore_equals_full_interpolation_then_argmax(case_image, plan):
    image, label = case_image
    linear = apply_overrides(plan, {"3d.separate_axis": None})
    _, _, props = preprocess_case(image, label, linear, "3d")
    logits = torch.randn(
        3, *props.shape_after_resampling, generator=torch.Generator().manual_seed(0)
    )
    restored = restore_to_original(logits, props, logits=True, slab=3)
    full = torch.nn.functional.interpolate(
        logits[None], size=props.shape_after_crop, mode="trilinear", align_corners=False
    )[0]
    crop = tuple(slice(a, b) for a, b in props.bbox)
    agree = np.mean(restored.array[0][crop] == full.argmax(0).numpy())
    assert agree > 0.999
    outside = np.ones(image.spatial_shape, bool)
    outside[crop] = False
    assert np.all(restored.array[0][outside] == 0)


def test_regions_are_painted_in_order(case_image, plan):
    image, label = case_image
    _, lab, props = preprocess_case(image, label, plan, "3d")
    whole = (lab[0] > 0).astype(np.float32)
    core = (lab[0] == 1).astype(np.float32)
    restored = restore_to_original(np.stack([whole, core]), props, region_order=(2, 1))
    assert dice(restored.array[0], label, 1) > 0.9
    assert dice(restored.array[0], label, 2) > 0.9


def test_2d_image_round_trip(plan):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :36]
    label = ((yy - 20) ** 2 + (xx - 18) ** 2 < 100).astype(np.uint8)
    array = (label * 100 + rng.normal(50, 2, label.shape)).astype(np.float32)
    image = Image.from_array(array[None], (0.7, 0.9), (3.0, 4.0), [[0.0, 1.0], [1.0, 0.0]])
    plan2d = apply_overrides(plan, {"default_configuration": "2d"})
    out, lab, props = preprocess_case(image, label, plan2d)
    assert out.shape[1] == 1
    assert lab.shape[1] == 1
    restored = restore_to_original(one_hot(lab[0], 3), props)
    assert restored.array.shape == (1, 40, 36)
    assert restored.spacing == (0.7, 0.9)
    assert restored.origin == (3.0, 4.0)
    np.testing.assert_array_equal(restored.direction, image.direction)
    assert dice(restored.array[0], label, 1) > 0.95


def test_case_properties_json_round_trip(case_image, plan):
    image, label = case_image
    _, _, props = preprocess_case(image, label, plan, "3d", case_id="c0")
    assert from_jsonable(CaseProperties, to_jsonable(props)) == props


def test_restore_probabilities_into_a_memmap(case_image, plan, tmp_path):
    from medseg.preprocess import restore_probabilities

    image, label = case_image
    _, lab, props = preprocess_case(image, label, plan, "3d")
    probs = one_hot(lab[0], 3)
    out = np.lib.format.open_memmap(
        tmp_path / "probs.npy", mode="w+", dtype=np.float16, shape=(3, *image.spatial_shape)
    )
    assert restore_probabilities(probs, props, out=out) is out
    np.testing.assert_allclose(out.astype(np.float32).sum(0), 1.0, atol=2e-3)
    labels = restore_to_original(probs, props).array[0]
    assert np.mean(out.argmax(0) == labels) > 0.99
    crop = tuple(slice(a, b) for a, b in props.bbox)
    outside = np.ones(image.spatial_shape, bool)
    outside[crop] = False
    assert np.all(out[0][outside] == 1)


def test_output_on_the_wrong_grid_is_a_geometry_error(case_image, plan):
    from medseg.errors import GeometryError

    image, label = case_image
    _, _, props = preprocess_case(image, label, plan, "3d", case_id="c9")
    with pytest.raises(GeometryError, match=r"c9.*spatial shape"):
        restore_to_original(np.zeros((3, 4, 4, 4), np.float32), props)


@pytest.mark.parametrize("config", ["3d", "2d"])
def test_transposed_plan_round_trip(plan, make_case, config):
    """Coarse axis last in the image: the network grid puts it first, restore undoes it."""
    spacing = (0.8, 0.8, 3.0)
    array, label = make_case(shape=(40, 36, 12), spacing=spacing, seed=3)
    image = Image.from_array(array[None], spacing, (1.0, 2.0, 3.0), np.eye(3)[[1, 0, 2]])
    transposed = apply_overrides(plan, {"transpose": [2, 0, 1], "3d.spacing": [3.0, 1.2, 1.2]})
    out, lab, props = preprocess_case(image, label, transposed, config)
    nz = np.argwhere(array != 0)
    crop = nz.max(0) - nz.min(0) + 1
    if config == "3d":
        expected = tuple(
            round(crop[a] * spacing[a] / t) for a, t in zip((2, 0, 1), (3.0, 1.2, 1.2), strict=True)
        )
        assert out.shape[1:] == expected
    else:
        assert out.shape[1] == crop[2]  # slices are cut across the coarse axis
    restored = restore_to_original(one_hot(lab[0], 3), props)
    assert restored.array.shape == (1, 40, 36, 12)
    assert restored.spacing == spacing
    np.testing.assert_array_equal(restored.direction, image.direction)
    for value in (1, 2):
        assert dice(restored.array[0], label, value) > 0.9
