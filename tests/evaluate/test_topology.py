"""Betti numbers of shapes with known topology."""

from __future__ import annotations

import numpy as np

from medseg.evaluate import betti_errors, betti_numbers


def test_solid_torus_hollow_ball_and_two_parts():
    torus = np.zeros((9, 9, 9), bool)
    torus[2:7, 2:7, 2:7] = True
    torus[2:7, 4, 4] = False  # a tunnel through the cube
    assert betti_numbers(torus) == (1, 1, 0)
    shell = np.zeros((9, 9, 9), bool)
    shell[1:8, 1:8, 1:8] = True
    shell[4, 4, 4] = False
    assert betti_numbers(shell) == (1, 0, 1)
    two = np.zeros((9, 9, 9), bool)
    two[1:3, 1:3, 1:3] = two[5:8, 5:8, 5:8] = True
    assert betti_numbers(two) == (2, 0, 0)


def test_2d_ring_and_connectivity_duality():
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[3, 3] = False
    assert betti_numbers(ring) == (1, 1)
    diagonal = np.zeros((4, 4), bool)
    diagonal[1, 1] = diagonal[2, 2] = True
    assert betti_numbers(diagonal) == (1, 0)
    assert betti_numbers(diagonal, connectivity="face") == (2, 0)


def test_errors_per_dimension_and_sum():
    ref = np.zeros((9, 9, 9), bool)
    ref[2:7, 2:7, 2:7] = True
    pred = ref.copy()
    pred[2:7, 4, 4] = False
    pred[0, 0, 0] = True
    errors = betti_errors(pred, ref)
    assert errors == {"betti0_error": 1, "betti1_error": 1, "betti2_error": 0, "betti_error": 2}
