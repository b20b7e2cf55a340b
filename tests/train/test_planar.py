"""2D / 2.5D inputs along any plane: helpers, the sampler and plan validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.errors import ConfigError
from medseg.plan import apply_overrides
from medseg.train.planar import (
    from_plane,
    neighbour_indices,
    plane_order,
    slice_with_neighbours,
    stack_neighbours,
    to_plane,
)
from medseg.train.sampling import PatchSampler
from medseg.train.validation import validate_cases

SHAPE = (7, 12, 10)  # non-cubic: every axis tells which one a slice was cut along


def coded(channels: int = 2) -> np.ndarray:
    """``(C, Z, Y, X)`` float32 whose value c*1e6 + z*1e4 + y*100 + x names its voxel."""
    c, z, y, x = np.indices((channels, *SHAPE))
    return (c * 1e6 + z * 1e4 + y * 100 + x).astype(np.float32)


def decode(value: float) -> tuple[int, int, int, int]:
    v = round(value)
    return v // 1_000_000, v // 10_000 % 100, v // 100 % 100, v % 100


def test_neighbour_indices_repeat_the_end_slices() -> None:
    assert neighbour_indices(0, 7, 2).tolist() == [0, 0, 0, 1, 2]
    assert neighbour_indices(6, 7, 2).tolist() == [4, 5, 6, 6, 6]
    assert neighbour_indices(3, 7, 0).tolist() == [3]
    with pytest.raises(ValueError, match="neighbours"):
        neighbour_indices(3, 7, -1)


@pytest.mark.parametrize("plane", [0, 1, 2])
def test_to_plane_and_back_is_the_identity(plane: int) -> None:
    volume = coded()
    moved = to_plane(volume, plane)
    assert moved.shape[1] == SHAPE[plane]
    assert [decode(moved[0, 3, 1, 2])[1:][a] for a in range(3)][plane] == 3
    assert np.array_equal(from_plane(moved, plane), volume)
    with pytest.raises(ValueError, match="plane"):
        plane_order(3)


@pytest.mark.parametrize("neighbours", [0, 1, 3])
def test_slice_with_neighbours_is_channel_major_and_matches_the_stack(neighbours: int) -> None:
    volume = coded(channels=2)
    width = 2 * neighbours + 1
    stacked = stack_neighbours(volume, neighbours)
    assert stacked.shape == (2 * width, *SHAPE)
    for s in (0, 3, 6):
        one = slice_with_neighbours(volume, s, neighbours)
        assert np.array_equal(one, stacked[:, s])
        for c in range(2):
            for j in range(width):
                expected = min(max(s - neighbours + j, 0), SHAPE[0] - 1)
                assert decode(one[c * width + j, 4, 5]) == (c, expected, 4, 5)


def _sampler(source, plane: int, neighbours: int, patch) -> PatchSampler:
    return PatchSampler(
        source, ["c"], patch, 4, 1.0, foreground_labels=(1,), plane=plane, neighbours=neighbours
    )


@pytest.mark.parametrize("plane", [0, 1, 2])
def test_sampler_cuts_along_the_plane_with_neighbours_and_centre_label(
    array_source, plane: int
) -> None:
    """Whole in-plane patches: every value names its voxel, so the slice axis and offsets show."""
    neighbours = 2
    box = (slice(2, 5), slice(3, 9), slice(1, 6))
    label = np.zeros((1, *SHAPE), np.int16)
    label[(0, *box)] = 1
    label[0, 3, 4, 2] = 0  # a hole: the label slice must be the centre one, not any box slice
    source = array_source({"c": (coded(), label)})
    in_plane = tuple(SHAPE[a] for a in range(3) if a != plane)
    batch = _sampler(source, plane, neighbours, in_plane).sample(np.random.default_rng(0))
    assert batch.image.shape == (4, 2 * 5, *in_plane)
    assert batch.label.shape == (4, 1, *in_plane)
    for image, lab in zip(batch.image, batch.label, strict=True):
        centre = decode(image[2, 0, 0])  # channel 0, offset 0 (the centre of 5)
        s = centre[1 + plane]
        assert box[plane].start <= s < box[plane].stop  # forced samples: through the box
        expected = to_plane(label, plane)[:, s]
        assert np.array_equal(lab, expected)
        for c in range(2):
            for j in range(5):
                voxel = list(decode(image[c * 5 + j, 0, 0]))
                assert voxel[0] == c
                assert voxel[1 + plane] == min(max(s - 2 + j, 0), SHAPE[plane] - 1)


def test_sampler_pads_with_the_end_slice_at_the_volume_ends(array_source) -> None:
    label = np.zeros((1, *SHAPE), np.int16)
    label[0, 0, 5, 5] = 1  # foreground on the first slice only: forced samples are slice 0
    source = array_source({"c": (coded(1), label)})
    batch = _sampler(source, 0, 2, SHAPE[1:]).sample(np.random.default_rng(1))
    for image in batch.image:
        slices = [decode(image[j, 0, 0])[1] for j in range(5)]
        assert slices == [0, 0, 0, 1, 2]


def test_sampler_refuses_plane_or_neighbours_for_3d_patches(array_source) -> None:
    source = array_source({"c": (coded(1), np.ones((1, *SHAPE), np.int16))})
    with pytest.raises(ValueError, match="2D patches"):
        _sampler(source, 1, 0, (4, 4, 4))


def test_plan_validation_names_bad_planes_and_neighbours(tiny_plan) -> None:
    plan = tiny_plan(ndim=2)
    name = plan.default_configuration
    assert plan.input_channels() == 1
    wide = apply_overrides(plan, {f"{name}.neighbours": 3})
    assert wide.input_channels() == 7
    with pytest.raises(ConfigError, match="neighbours must be >= 0"):
        apply_overrides(plan, {f"{name}.neighbours": -1})
    with pytest.raises(ConfigError, match="plane must be 0, 1 or 2"):
        apply_overrides(plan, {f"{name}.plane": 3})
    plan3 = tiny_plan(ndim=3)
    with pytest.raises(ConfigError, match="needs a 2D patch"):
        apply_overrides(plan3, {"neighbours": 1})
    with pytest.raises(ConfigError, match="needs a 2D patch"):
        apply_overrides(plan3, {"plane": 2})
    with pytest.raises(ConfigError, match="lesion_synthesis"):
        apply_overrides(wide, {f"{name}.training.lesion_synthesis.probability": 0.5})


class ChannelOracle(torch.nn.Module):
    """Logits whose argmax is round(input channel ``channel``): perfect when image == label."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.channel = channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centres = torch.arange(3, dtype=x.dtype).view(1, -1, 1, 1)
        return -((x[:, self.channel : self.channel + 1] - centres) ** 2) * 100


@pytest.mark.parametrize("plane", [1, 2])
def test_case_validation_slices_along_the_plane(array_source, tiny_plan, plane: int) -> None:
    """The centre channel reproduces the label (Dice 1); the next slice's does not."""
    label = np.zeros((1, *SHAPE), np.int16)
    label[0, 2:5, 3:9, 1:6] = 1
    label[0, 3, 4:7, 2:4] = 2
    source = array_source({"a": (label.astype(np.float32), label)})
    plan = tiny_plan(ndim=2)
    name = plan.default_configuration
    plan = apply_overrides(plan, {f"{name}.plane": plane, f"{name}.neighbours": 2})
    cpu = torch.device("cpu")
    perfect = validate_cases(ChannelOracle(2), source, ["a"], plan, name, device=cpu)["a"]
    assert perfect == {"ball": pytest.approx(1.0), "core": pytest.approx(1.0)}
    shifted = validate_cases(ChannelOracle(3), source, ["a"], plan, name, device=cpu)["a"]
    assert shifted["ball"] < 0.95
