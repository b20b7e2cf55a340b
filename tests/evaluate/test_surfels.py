"""Neighbour codes and the surface-area table against DeepMind's hand-made tables."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.evaluate.surfels import neighbour_codes, surface_area_table, surface_corners


def _reverse_bits(code: int, width: int) -> int:
    # DeepMind's kernel puts the (0, 0, 0) voxel on the highest bit; ours on the lowest
    return int(format(code, f"0{width}b")[::-1], 2)


@pytest.mark.parametrize("spacing", [(1, 1, 1), (2.5, 0.8, 0.8), (0.3, 1.7, 2.9)])
def test_area_table_equals_deepmind(deepmind, spacing):
    from surface_distance import lookup_tables

    ours = surface_area_table(spacing)
    theirs = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    np.testing.assert_allclose(ours, [theirs[_reverse_bits(c, 8)] for c in range(256)], atol=1e-12)


@pytest.mark.parametrize("spacing", [(2, 1), (0.7, 1.3)])
def test_contour_table_equals_deepmind(deepmind, spacing):
    from surface_distance import lookup_tables

    ours = surface_area_table(spacing)
    theirs = lookup_tables.create_table_neighbour_code_to_contour_length(spacing)
    np.testing.assert_allclose(ours, [theirs[_reverse_bits(c, 4)] for c in range(16)], atol=1e-12)


def test_cube_area_is_bevelled():
    cube = np.zeros((12, 12, 12), bool)
    cube[1:11, 1:11, 1:11] = True
    codes = neighbour_codes(cube)
    area = surface_area_table((1, 1, 1))[codes[surface_corners(codes)]].sum()
    assert area == pytest.approx(
        564.1, abs=0.1
    )  # the marching-cubes area, not the 600 of voxel faces


def test_single_voxel_codes():
    mask = np.zeros((3, 3, 3), bool)
    mask[1, 1, 1] = True
    codes = neighbour_codes(mask)
    assert codes.shape == (4, 4, 4)
    # the corner below-left-front of the voxel sees it at block offset (1, 1, 1): bit 7
    assert codes[1, 1, 1] == 128
    assert codes[2, 2, 2] == 1
    assert np.count_nonzero(surface_corners(codes)) == 8
