"""Lesion measurements against analytic ellipsoids and ellipses on anisotropic, oblique grids."""

from __future__ import annotations

import numpy as np
import pytest
from report_shapes import ellipsoid_mask, make_image, physical_grid, rotation
from scipy.spatial.distance import pdist

from medseg.report.axes import longest_diameter
from medseg.report.findings import compute_findings

NAMES = {1: "brain", 2: "lesion"}


def _findings(labels, geometry, **kwargs):
    image = make_image(labels.astype(np.float32) * 10, **geometry)
    seg = make_image(labels.astype(np.uint8), **geometry)
    return compute_findings(image, seg, names=NAMES, **kwargs)


def test_longest_diameter_matches_brute_force():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(400, 3)) * [5.0, 2.0, 1.0]
    assert longest_diameter(points).length_mm == pytest.approx(pdist(points).max())
    flat = np.c_[rng.normal(size=(50, 2)), np.zeros(50)]  # coplanar: hull in its own plane
    assert longest_diameter(flat).length_mm == pytest.approx(pdist(flat).max())


def test_ellipsoid_volume_and_diameter_at_anisotropic_oblique_spacing(oblique_geometry):
    shape = (40, 110, 80)
    points = physical_grid(shape, **oblique_geometry)
    centre = points[20, 55, 40]
    axes = np.array([22.0, 14.0, 9.0])
    frame = rotation(30.0, -15.0, 40.0)
    lesion = ellipsoid_mask(points, centre, axes, frame)
    labels = np.where(lesion, 2, 1).astype(np.uint8)
    labels[:, :, :3] = 0
    findings = _findings(labels, oblique_geometry)

    analytic_ml = 4.0 / 3.0 * np.pi * axes.prod() / 1000.0
    (only,) = findings.lesions
    assert only.volume_ml == pytest.approx(analytic_ml, rel=0.02)
    assert findings.structures[1].volume_ml == pytest.approx(only.volume_ml)
    diagonal = float(np.linalg.norm(oblique_geometry["spacing"]))
    assert abs(only.longest_diameter_mm - 2 * axes[0]) <= diagonal
    assert np.allclose(only.centroid_lps_mm, centre[::-1], atol=0.5)
    assert only.structure == "brain"


@pytest.mark.parametrize("angle", [0.0, 35.0, 70.0, 110.0])
def test_recist_axes_of_rotated_ellipse_on_oblique_image(oblique_geometry, angle):
    shape = (9, 120, 90)
    direction = oblique_geometry["direction"]
    points = physical_grid(shape, **oblique_geometry)
    centre = points[4, 60, 45]
    theta = np.radians(angle)
    e1, e2, normal = direction[:, 1], direction[:, 2], direction[:, 0]
    u = np.cos(theta) * e1 + np.sin(theta) * e2
    v = -np.sin(theta) * e1 + np.cos(theta) * e2
    a, b = 24.0, 11.0
    lesion = ellipsoid_mask(points, centre, (a, b, 5.5), np.stack([u, v, normal], axis=1))
    findings = _findings(lesion.astype(np.uint8) * 2, oblique_geometry)

    (only,) = findings.lesions
    in_plane_diagonal = float(np.hypot(*oblique_geometry["spacing"][1:]))
    assert only.axial_axis == 0
    assert only.axial_slice == 4
    assert abs(only.long_axis_mm - 2 * a) <= in_plane_diagonal
    assert abs(only.short_axis_mm - 2 * b) <= in_plane_diagonal
    long_vec = np.subtract(*only.long_axis_lps_mm)
    short_vec = np.subtract(*only.short_axis_lps_mm)
    assert abs(long_vec @ short_vec) / (np.linalg.norm(long_vec) * np.linalg.norm(short_vec)) < 0.05
    assert abs(abs(long_vec / np.linalg.norm(long_vec) @ u[::-1]) - 1) < 0.02


def test_side_is_the_same_when_the_scan_is_stored_flipped():
    shape, spacing = (12, 40, 50), (3.0, 1.0, 0.8)
    labels = np.ones(shape, np.uint8)
    labels[4:8, 10:20, 35:45] = 2  # high x index; with identity direction +x is patient left
    labels[5:7, 25:30, 5:9] = 2  # low x index: patient right
    plain = {"spacing": spacing, "origin": (0.0, 0.0, 0.0), "direction": np.eye(3)}
    flipped_dir = np.diag([1.0, 1.0, -1.0])
    last_x = (shape[2] - 1) * spacing[2]
    flipped = {"spacing": spacing, "origin": (0.0, 0.0, last_x), "direction": flipped_dir}

    a = _findings(labels, plain)
    b = _findings(labels[:, :, ::-1].copy(), flipped)
    assert [lesion.side for lesion in a.lesions] == ["left", "right"]
    assert [lesion.side for lesion in b.lesions] == ["left", "right"]
    for one, two in zip(a.lesions, b.lesions, strict=True):
        assert np.allclose(one.centroid_lps_mm, two.centroid_lps_mm)
        assert one.long_axis_mm == pytest.approx(two.long_axis_mm)


def test_lesion_table_select_and_burden():
    labels = np.ones((10, 30, 30), np.uint8)
    labels[2:5, 2:6, 2:6] = 2
    labels[2:8, 15:25, 15:25] = 2
    labels[0, 0, 0] = 2  # touches the border
    geometry = {"spacing": (2.0, 1.0, 1.0), "origin": (0.0, 0.0, 0.0), "direction": np.eye(3)}
    findings = _findings(labels, geometry)
    table = findings.lesions
    assert len(table) == 3
    assert [lesion.voxels for lesion in table] == [600, 48, 1]
    assert table.largest().lesion_id == 1
    assert len(table.select(min_volume_ml=0.05)) == 2
    assert len(table.select(structure="brain")) == 3
    assert findings.burden[0].count == 3
    assert findings.burden[0].total_volume_ml == pytest.approx(649 * 2e-3)
    assert [f.target for f in findings.flags if f.code == "lesion_at_border"] == ["lesion 3"]
