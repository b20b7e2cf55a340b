"""Topology rules worked out by hand, and the feature-map estimate against a MONAI network."""

from __future__ import annotations

import math

import pytest
import torch

from medseg.plan.topology import (
    feature_map_size,
    pool_and_conv_props,
    shrink_axis,
    stage_filters,
)


def test_pooling_stops_at_min_feature_size_4():
    topo = pool_and_conv_props((1.0, 1.0, 1.0), (48, 40, 24))
    # 48 -> 24 -> 12 -> 6, 40 -> 20 -> 10 -> 5, 24 -> 12 -> 6: no axis pools below 8 voxels
    assert topo.pools_per_axis == (3, 3, 2)
    assert topo.divisor == (8, 8, 4)
    final = [math.ceil(p / d) for p, d in zip(topo.patch_size, topo.divisor, strict=True)]
    assert all(4 <= f < 8 for f in final)
    assert len(topo.strides) == len(topo.kernel_sizes) == 4
    assert topo.strides[0] == (1, 1, 1)
    assert topo.kernel_sizes[-1] == (3, 3, 3)


def test_kernel_one_on_a_coarse_axis():
    topo = pool_and_conv_props((5.0, 1.0, 1.0), (16, 128, 128))
    # axis 0 joins once in-plane pooling brings the others within 2x of 5 mm (after 2 pools)
    assert topo.kernel_sizes == (
        (1, 3, 3),
        (1, 3, 3),
        (3, 3, 3),
        (3, 3, 3),
        (3, 3, 3),
        (3, 3, 3),
    )
    assert topo.strides == (
        (1, 1, 1),
        (1, 2, 2),
        (1, 2, 2),
        (2, 2, 2),
        (2, 2, 2),
        (1, 2, 2),
    )
    assert topo.pools_per_axis == (2, 5, 5)


def test_lone_axis_needs_12_voxels():
    topo = pool_and_conv_props((1.0, 1.0), (10, 64))
    # after one joint pool (5, 32), only axis 1 may pool: 32 -> 16 -> 8, then 8 < 12 stops
    assert topo.pools_per_axis == (1, 3)


def test_patch_padded_to_multiple_of_2_to_the_pools():
    topo = pool_and_conv_props((1.0, 1.0, 1.0), (50, 37, 64))
    for p, d, pools in zip(topo.patch_size, topo.divisor, topo.pools_per_axis, strict=True):
        assert d == 2**pools
        assert p % d == 0
    assert topo.patch_size[0] >= 50
    assert topo.patch_size[1] >= 37
    assert topo.patch_size[2] == 64


def test_stage_filters_cap():
    assert stage_filters(6, 32, 320) == (32, 64, 128, 256, 320, 320)
    assert stage_filters(5, 8, 128) == (8, 16, 32, 64, 128)


def test_shrink_axis_picks_largest_patch_to_shape_ratio():
    assert shrink_axis((64, 64, 64), (100.0, 70.0, 200.0)) == 1


@pytest.mark.parametrize("deep_supervision", [False, True])
def test_feature_map_size_counts_every_conv_output_of_a_unet(deep_supervision):
    """Independent count: forward hooks on MONAI's DynUNet with the same topology."""
    dynunet = pytest.importorskip("monai.networks.nets").DynUNet
    topo = pool_and_conv_props((2.0, 1.0, 1.0), (16, 32, 32))
    filters = stage_filters(len(topo.strides), 4, 32)
    heads = len(filters) - 2 if deep_supervision else 0
    net = dynunet(
        spatial_dims=3,
        in_channels=1,
        out_channels=3,
        kernel_size=topo.kernel_sizes,
        strides=topo.strides,
        upsample_kernel_size=topo.strides[1:],
        filters=filters,
        deep_supervision=deep_supervision,
        deep_supr_num=max(1, heads),
    )
    counted = []

    def hook(module, args, output):
        counted.append(output.numel())

    for module in net.modules():
        if isinstance(module, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
            module.register_forward_hook(hook)
    net.train()
    with torch.no_grad():
        net(torch.zeros(1, 1, *topo.patch_size))
    expected = sum(counted)  # deep_supr_num = stages - 2: a head at every decoder level
    ours = feature_map_size(
        topo.patch_size, filters, topo.strides, 3, deep_supervision=deep_supervision
    )
    assert ours == expected
