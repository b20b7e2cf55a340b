"""Continuous maps back on the input grid, including plans that reorder the axes."""

import numpy as np
import torch

from medseg.infer.export import restore_maps
from medseg.preprocess import CaseProperties


def _props(transpose):
    """A (12, 10, 8) image cropped to [2:10, 1:9, 0:8], network grid in ``transpose`` order."""
    crop = (8, 8, 8)
    return CaseProperties(
        case_id="c",
        spatial_shape=(12, 10, 8),
        spacing=(1.0, 1.0, 3.0),
        origin=(0.0, 0.0, 0.0),
        direction=tuple(map(tuple, np.eye(3))),
        bbox=((2, 10), (1, 9), (0, 8)),
        shape_after_crop=crop,
        transpose=transpose,
        shape_after_resampling=tuple(crop[a] for a in transpose),
        spacing_after_resampling=(1.0, 1.0, 1.0),
    )


def test_identity_resampling_restores_values_and_fills_outside():
    maps = torch.rand(2, 8, 8, 8)
    restored = restore_maps(maps, _props((0, 1, 2)), dtype=np.float32, fill=(1.0, 0.0))
    np.testing.assert_allclose(restored.array[:, 2:10, 1:9, :], maps.numpy(), atol=1e-6)
    assert np.all(restored.array[0, :2] == 1.0)
    assert np.all(restored.array[1, :2] == 0.0)


def test_transposed_network_grid_is_transposed_back():
    """Map values laid out in network order (x, z, y) come back in image order (z, y, x)."""
    image_order = np.random.default_rng(0).random((2, 8, 8, 8)).astype(np.float32)
    network_order = torch.from_numpy(np.ascontiguousarray(image_order.transpose(0, 3, 1, 2)))
    restored = restore_maps(network_order, _props((2, 0, 1)), dtype=np.float32)
    np.testing.assert_allclose(restored.array[:, 2:10, 1:9, :], image_order, atol=1e-6)
    assert restored.spacing == (1.0, 1.0, 3.0)
