"""Resampling against scikit-image (nnU-Net's implementation) and PyTorch references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medseg.preprocess import resample_image, resample_label, resampled_slabs
from medseg.preprocess.resample import nearest_indices, new_shape_for

skt = pytest.importorskip("skimage.transform")


def smooth(shape, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    return (np.sin(3 * grid[0]) + grid[1] ** 2 - grid[2] + 0.01 * rng.normal(size=shape)).astype(
        np.float32
    )


def test_new_shape():
    assert new_shape_for((10, 20, 30), (3.0, 0.8, 1.0), (1.5, 1.2, 1.0)) == (20, 13, 30)


def test_image_order3_matches_skimage_resize():
    volume = smooth((9, 14, 11))
    new = (17, 10, 15)
    ours = resample_image(volume[None], new)[0]
    ref = skt.resize(
        volume.astype(np.float64),
        new,
        order=3,
        mode="edge",
        anti_aliasing=False,
        preserve_range=True,
    )
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_image_separate_axis_is_inplane_then_nearest():
    volume = smooth((6, 14, 11))
    new = (12, 10, 15)
    ours = resample_image(volume[None], new, separate_axis=0)[0]
    inplane = np.stack(
        [
            skt.resize(s.astype(np.float64), new[1:], order=3, mode="edge", anti_aliasing=False)
            for s in volume
        ]
    )
    ref = skt.resize(inplane, new, order=0, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_label_one_hot_linear_matches_nnunet_style_reference():
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in (14, 18, 16)], indexing="ij")
    r = np.sqrt(sum(g**2 for g in grid))
    label = np.zeros(r.shape, np.uint8)
    label[r < 0.9] = 2
    label[r < 0.5] = 1
    label[(r < 0.3) & (grid[0] > 0)] = 3
    new = (25, 11, 30)
    ours = resample_label(label, new)
    ref = np.zeros(new, np.uint8)
    for value in (1, 2, 3):
        mask = skt.resize(
            (label == value).astype(float), new, order=1, mode="edge", anti_aliasing=False
        )
        ref[mask >= 0.5] = value
    assert ours.dtype == np.uint8
    assert np.mean(ours == ref) > 0.999
    nearest = resample_label(label, new, order=0)
    assert set(np.unique(nearest)) == {0, 1, 2, 3}


def test_nearest_indices_match_torch_nearest_exact():
    for old, new in [(5, 12), (12, 5), (7, 7), (9, 4)]:
        ref = (
            F.interpolate(
                torch.arange(old, dtype=torch.float32)[None, None], size=new, mode="nearest-exact"
            )[0, 0]
            .long()
            .numpy()
        )
        np.testing.assert_array_equal(nearest_indices(old, new), ref)


def _collect(probs, new, separate_axis, slab):
    axis = 0 if separate_axis is None else separate_axis
    out = torch.zeros((new[axis], probs.shape[0], *[s for a, s in enumerate(new) if a != axis]))
    for start, stop, values in resampled_slabs(probs, new, separate_axis=separate_axis, slab=slab):
        out[start:stop] = values
    return out.movedim(0, axis + 1)  # (K, *new)


@pytest.mark.parametrize("slab", [1, 3, 64])
def test_slabs_equal_one_trilinear_interpolation(slab):
    probs = torch.softmax(torch.randn(3, 7, 10, 9, generator=torch.Generator().manual_seed(0)), 0)
    new = (15, 8, 13)
    ref = F.interpolate(probs[None], size=new, mode="trilinear", align_corners=False)[0]
    torch.testing.assert_close(_collect(probs, new, None, slab), ref, atol=1e-6, rtol=1e-5)


def test_slabs_with_separate_axis_use_order0_along_it():
    probs = torch.rand(2, 10, 6, 9, generator=torch.Generator().manual_seed(1))
    new = (12, 8, 20)
    plane = F.interpolate(
        probs.permute(2, 0, 1, 3), size=(12, 20), mode="bilinear", align_corners=False
    )  # (y, K, z, x)
    lines = plane.permute(1, 2, 3, 0).reshape(1, 2 * 12 * 20, 6)  # (1, K*z*x, y)
    ref = F.interpolate(lines, size=8, mode="nearest-exact").reshape(2, 12, 20, 8)
    ref = ref.permute(0, 1, 3, 2)  # (K, z, y, x)
    torch.testing.assert_close(_collect(probs.numpy(), new, 1, 3), ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("shape", "new"),
    [((9, 14, 11), (17, 10, 15)), ((8, 12, 10), (8, 5, 23)), ((13, 7), (6, 20))],
)
def test_cubic_zoom_equals_scipy_zoom(shape, new):
    from scipy import ndimage

    from medseg.preprocess.resample import cubic_zoom

    volume = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    factors = [n / o for n, o in zip(new, shape, strict=True)]
    ref = ndimage.zoom(volume.astype(np.float64), factors, order=3, mode="nearest", grid_mode=True)
    np.testing.assert_allclose(cubic_zoom(volume, new), ref, atol=1e-5)
