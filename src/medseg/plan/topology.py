"""U-Net topology from spacing and patch size, and nnU-Net's feature-map size estimate.

The rules are listed in docs/plan.md.

All tuples are in array axis order (z, y, x) or (y, x); spacing in mm, sizes in voxels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_FEATURE_MAP_EDGE = 4
"""Pooling stops before an axis of a feature map gets shorter than this (nnU-Net's value)."""


@dataclass(frozen=True)
class Topology:
    """Result of :func:`pool_and_conv_props`.

    ``strides`` and ``kernel_sizes`` hold one tuple per stage; the first stride is all ones and the
    last kernel (bottleneck) is all threes. ``patch_size`` is the input padded up to a multiple of
    ``divisor`` (2 to the number of poolings per axis).
    """

    pools_per_axis: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    patch_size: tuple[int, ...]
    divisor: tuple[int, ...]


def pool_and_conv_props(
    spacing: tuple[float, ...],
    patch_size: tuple[int, ...],
    *,
    min_edge: int = MIN_FEATURE_MAP_EDGE,
) -> Topology:
    """nnU-Net's ``get_pool_and_conv_props``: where to pool and which kernels to use.

    An axis is pooled while its feature map is at least ``2 * min_edge`` voxels long and its
    current spacing is within 2x of the finest; when only one axis can be pooled it must be at
    least ``3 * min_edge`` long. Kernels are 3 on axes within 2x of the finest spacing and 1
    otherwise (an axis switches to 3 once pooling of the others brings it within 2x).

    Parameters
    ----------
    spacing : tuple of float
        Target spacing in mm, array order.
    patch_size : tuple of int
        Patch in voxels, array order.
    min_edge : int
        Smallest feature-map edge in voxels.

    Returns
    -------
    Topology
    """
    dim = len(spacing)
    current_spacing = [float(s) for s in spacing]
    current_size = [int(s) for s in patch_size]
    pools = [0] * dim
    kernel = [1] * dim
    strides: list[tuple[int, ...]] = [(1,) * dim]
    kernels: list[tuple[int, ...]] = []
    while True:
        valid = [i for i in range(dim) if current_size[i] >= 2 * min_edge]
        if not valid:
            break
        finest = min(current_spacing[i] for i in valid)
        valid = [i for i in valid if current_spacing[i] / finest < 2]
        if len(valid) == 1 and current_size[valid[0]] < 3 * min_edge:
            break
        if not valid:
            break
        smallest = min(current_spacing)
        for d in range(dim):
            if kernel[d] != 3 and current_spacing[d] / smallest < 2:
                kernel[d] = 3
        stride = [1] * dim
        for v in valid:
            stride[v] = 2
            pools[v] += 1
            current_spacing[v] *= 2
            current_size[v] = math.ceil(current_size[v] / 2)
        strides.append(tuple(stride))
        kernels.append(tuple(kernel))
    kernels.append((3,) * dim)
    divisor = tuple(2**p for p in pools)
    padded = tuple(int(math.ceil(s / d) * d) for s, d in zip(patch_size, divisor, strict=True))
    return Topology(tuple(pools), tuple(strides), tuple(kernels), padded, divisor)


def stage_filters(num_stages: int, base: int, maximum: int) -> tuple[int, ...]:
    """Features per stage: ``base`` doubling per stage, capped at ``maximum``."""
    return tuple(min(base * 2**i, maximum) for i in range(num_stages))


def feature_map_size(
    patch_size: tuple[int, ...],
    filters: tuple[int, ...],
    strides: tuple[tuple[int, ...], ...],
    num_classes: int,
    *,
    convs_per_stage: int = 2,
    deep_supervision: bool = True,
) -> int:
    """Feature-map voxels of a plain conv U-Net for one input sample (nnU-Net's memory proxy).

    Mirrors ``PlainConvUNet.compute_conv_feature_map_size`` in ``dynamic-network-architectures``:
    every conv output of the encoder and decoder, the transposed-conv outputs and the
    segmentation heads, counted as channels x voxels. It is a proxy for activation memory and
    compute, not a measurement.

    Parameters
    ----------
    patch_size : tuple of int
        Input patch in voxels.
    filters : tuple of int
        Features per stage.
    strides : tuple of tuple of int
        Stride per stage (first all ones).
    num_classes : int
        Output channels of the segmentation heads.

    Returns
    -------
    int
    """
    size = list(patch_size)
    sizes = []
    total = 0
    for features, stride in zip(filters, strides, strict=True):
        size = [s // st for s, st in zip(size, stride, strict=True)]
        sizes.append(size)
        total += convs_per_stage * features * math.prod(size)
    num_decoder = len(filters) - 1
    for s in range(num_decoder):
        level = num_decoder - 1 - s  # decoder stage s upsamples to encoder level ``level``
        voxels = math.prod(sizes[level])
        total += convs_per_stage * filters[level] * voxels  # conv blocks
        total += filters[level] * voxels  # transposed conv output
        if deep_supervision or s == num_decoder - 1:
            total += num_classes * voxels
    return int(total)


def shrink_axis(patch_size: tuple[int, ...], median_shape: tuple[float, ...]) -> int:
    """Axis to shrink next: the one whose patch is largest relative to the median image shape."""
    ratios = [p / m for p, m in zip(patch_size, median_shape, strict=True)]
    return int(np.argsort(ratios, kind="stable")[-1])
