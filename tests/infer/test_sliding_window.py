"""Sliding window, Gaussian map, mirroring TTA and fold averaging with plain torch modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from medseg.infer.sliding_window import (
    WindowSettings,
    gaussian_importance_map,
    mirror_combinations,
    sliding_window_predict,
    tile_starts,
)


class Constant(nn.Module):
    """Outputs the same logits everywhere: one value per class."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], len(self.logits), *x.shape[2:])
        return self.logits.view(1, -1, *([1] * (x.ndim - 2))).expand(shape).clone()


def conv_net(seed: int = 0, kernel=(3, 5, 3), classes: int = 3) -> nn.Module:
    """A non-symmetric conv net (not mirror-equivariant): asymmetric random kernels."""
    torch.manual_seed(seed)
    pad = tuple(k // 2 for k in kernel)
    return nn.Sequential(
        nn.Conv3d(1, 4, kernel, padding=pad), nn.ReLU(), nn.Conv3d(4, classes, kernel, padding=pad)
    ).eval()


def test_gaussian_map_matches_scipy_filter_of_a_delta():
    patch = (9, 17, 13)
    ours = gaussian_importance_map(patch)
    delta = np.zeros(patch)
    delta[tuple(p // 2 for p in patch)] = 1
    ref = ndimage.gaussian_filter(delta, [p / 8 for p in patch], mode="constant", truncate=10)
    ref = ref / ref.max() * 10
    assert ours.dtype == np.float32
    assert ours.max() == pytest.approx(10.0)
    np.testing.assert_allclose(ours, ref, rtol=2e-2, atol=1e-3)
    assert (ours > 0).all()
    for axis in range(3):
        np.testing.assert_allclose(ours, np.flip(ours, axis))


@pytest.mark.parametrize(
    ("size", "patch", "step", "expected"),
    [
        (100, 64, 0.5, [0, 18, 36]),
        (64, 64, 0.5, [0]),
        (128, 64, 0.5, [0, 32, 64]),
        (130, 64, 1.0, [0, 33, 66]),
    ],
)
def test_tile_starts_follow_nnunet(size, patch, step, expected):
    assert tile_starts([size], [patch], step) == [expected]


def test_tiles_cover_image_with_at_most_step_spacing():
    starts = tile_starts([97, 40], [32, 40], 0.5)
    assert starts[1] == [0]
    assert starts[0][0] == 0
    assert starts[0][-1] == 97 - 32
    assert max(np.diff(starts[0])) <= 16


def test_mirror_combinations_count_and_identity_first():
    combos = mirror_combinations((0, 1, 2))
    assert combos[0] == ()
    assert len(combos) == 8
    assert len(set(combos)) == 8


def test_smaller_than_patch_equals_one_forward_of_padded_input():
    net = conv_net()
    image = torch.randn(1, 5, 6, 7)
    settings = WindowSettings(patch_size=(8, 8, 8))
    result = sliding_window_predict([net], image, settings, num_classes=3)
    padded = torch.nn.functional.pad(image, (0, 1, 1, 1, 1, 2))  # (x, y, z) before/after
    with torch.no_grad():
        ref = torch.softmax(net(padded[None]), 1)[0, :, 1:6, 1:7, 0:7]
    assert result.probabilities.shape == (3, 5, 6, 7)
    torch.testing.assert_close(result.probabilities, ref, rtol=1e-5, atol=1e-6)


def test_pointwise_network_gives_exact_softmax_across_many_tiles():
    torch.manual_seed(1)
    net = nn.Conv3d(2, 3, 1).eval()
    image = torch.randn(2, 19, 23, 17)
    settings = WindowSettings(patch_size=(8, 8, 8), step=0.5, batch_size=3)
    result = sliding_window_predict([net], image, settings, num_classes=3)
    with torch.no_grad():
        ref = torch.softmax(net(image[None]), 1)[0]
    torch.testing.assert_close(result.probabilities, ref, rtol=1e-5, atol=1e-6)


def test_batch_size_does_not_change_result():
    net = conv_net()
    image = torch.randn(1, 12, 14, 10)
    results = [
        sliding_window_predict(
            [net],
            image,
            WindowSettings(patch_size=(8, 8, 8), batch_size=b, mirror_axes=(1,)),
            num_classes=3,
        ).probabilities
        for b in (1, 7)
    ]
    torch.testing.assert_close(results[0], results[1])


def test_tta_makes_prediction_of_symmetric_input_symmetric():
    net = conv_net()
    x = torch.randn(1, 8, 8, 8)
    for axis in (1, 2, 3):
        x = x + torch.flip(x, [axis])
    plain = WindowSettings(patch_size=(8, 8, 8))
    tta = WindowSettings(patch_size=(8, 8, 8), mirror_axes=(0, 1, 2))
    p_plain = sliding_window_predict([net], x, plain, num_classes=3).probabilities
    result = sliding_window_predict([net], x, tta, num_classes=3)
    assert result.members == 8
    for axis in (1, 2, 3):
        torch.testing.assert_close(result.probabilities, torch.flip(result.probabilities, [axis]))
    # the network itself is not mirror-equivariant, so without TTA the symmetry is broken
    assert not torch.allclose(p_plain, torch.flip(p_plain, [2]), atol=1e-4)


def test_tta_prediction_is_mirror_equivariant():
    net = conv_net(seed=3)
    x = torch.randn(1, 8, 16, 16)  # tiles at 0, 4, 8 on the in-plane axes: a symmetric grid
    tta = WindowSettings(patch_size=(8, 8, 8), mirror_axes=(1, 2))
    p = sliding_window_predict([net], x, tta, num_classes=3).probabilities
    p_flipped = sliding_window_predict([net], torch.flip(x, [2]), tta, num_classes=3).probabilities
    torch.testing.assert_close(p_flipped, torch.flip(p, [2]), rtol=1e-5, atol=1e-6)


def test_fold_averaging_is_the_mean_of_probabilities():
    a, b = Constant([2.0, 0.0, -1.0]), Constant([-1.0, 1.0, 0.5])
    image = torch.zeros(1, 9, 10, 11)
    settings = WindowSettings(patch_size=(8, 8, 8), mirror_axes=(0,))
    result = sliding_window_predict([a, b], image, settings, num_classes=3, track_entropy=True)
    pa = torch.softmax(a.logits, 0)
    pb = torch.softmax(b.logits, 0)
    expected = ((pa + pb) / 2).view(3, 1, 1, 1).expand(3, 9, 10, 11)
    torch.testing.assert_close(result.probabilities, expected)
    assert result.members == 4
    # averaging logits instead would give a different answer
    assert not torch.allclose(torch.softmax((a.logits + b.logits) / 2, 0), (pa + pb) / 2, atol=1e-3)


def test_sigmoid_activation_for_regions():
    net = Constant([0.0, 2.0])
    settings = WindowSettings(patch_size=(4, 4, 4), activation="sigmoid")
    result = sliding_window_predict([net], torch.zeros(1, 4, 4, 4), settings, num_classes=2)
    torch.testing.assert_close(result.probabilities[:, 0, 0, 0], torch.sigmoid(net.logits))


def test_no_network_is_an_error():
    with pytest.raises(ValueError, match="no networks"):
        sliding_window_predict(
            [], torch.zeros(1, 4, 4, 4), WindowSettings(patch_size=(4, 4, 4)), num_classes=2
        )
