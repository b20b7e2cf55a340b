"""Boundary metrics against analytic shapes (known surface distances), DeepMind and MONAI."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evaluate_shapes import blobs, sphere

from medseg.errors import ConfigError, GeometryError
from medseg.evaluate import (
    average_symmetric_surface_distance,
    compute_surface_distances,
    directed_average_distances,
    hausdorff,
    hd95,
    normalized_surface_dice,
    percentile_hausdorff,
    surface_dice,
)


def _voxel_pair():
    a = np.zeros((3, 3, 5), bool)
    b = a.copy()
    a[1, 1, 1] = b[1, 1, 3] = True
    return a, b


def test_single_voxels_deepmind_case():
    a, b = _voxel_pair()
    sd = compute_surface_distances(a, b, (3, 2, 1))
    assert directed_average_distances(sd) == pytest.approx((1.5, 1.5))
    assert hausdorff(sd) == pytest.approx(2.0)
    assert percentile_hausdorff(sd) == pytest.approx(2.0)
    assert surface_dice(sd, 1.0) == pytest.approx(0.5)


def test_single_voxels_erosion_separates_families():
    a, b = _voxel_pair()
    sd = compute_surface_distances(a, b, (3, 2, 1), boundary="erosion")
    assert average_symmetric_surface_distance(sd) == pytest.approx(2.0)
    assert surface_dice(sd, 1.0) == 0.0


def test_slabs_deepmind_case():
    a = np.zeros((100, 100, 100), bool)
    b = a.copy()
    a[:50] = True
    b[:51] = True
    sd = compute_surface_distances(b, a, (2, 1, 1))  # pred = [0:51], ref = [0:50]
    assert directed_average_distances(sd) == pytest.approx((0.322, 0.339), abs=1e-3)
    assert hausdorff(sd) == pytest.approx(2.0)
    assert percentile_hausdorff(sd) == pytest.approx(2.0)
    assert surface_dice(sd, 1.0) == pytest.approx(0.836, abs=1e-3)


@pytest.mark.parametrize(
    ("spacing", "tol", "assd_surfel", "nsd_surfel", "assd_erosion", "nsd_erosion"),
    [
        ((1, 1, 1), 0.5, 0.3338, 0.666, 0.3361, 0.664),
        ((2, 1, 1), 1.0, 0.3976, 0.818, 0.6148, 0.721),
        ((1, 1, 2), 0.5, 0.3929, 0.607, 0.3361, 0.664),
    ],
)
def test_box_shifted_one_voxel(spacing, tol, assd_surfel, nsd_surfel, assd_erosion, nsd_erosion):
    a = np.zeros((20, 20, 20), bool)
    b = a.copy()
    a[5:15, 5:15, 5:15] = True
    b[6:16, 5:15, 5:15] = True
    d = spacing[0]
    for boundary, assd, nsd in (
        ("surfel", assd_surfel, nsd_surfel),
        ("erosion", assd_erosion, nsd_erosion),
    ):
        sd = compute_surface_distances(a, b, spacing, boundary=boundary)
        assert hausdorff(sd) == pytest.approx(d)  # exact in both families
        assert average_symmetric_surface_distance(sd) == pytest.approx(assd, abs=6e-4)
        assert surface_dice(sd, tol) == pytest.approx(nsd, abs=6e-4)


def test_box_offset_matches_analytic_assd_within_a_voxel():
    lx, ly, lz, d = 12, 10, 8, 2
    a = np.zeros((30, 20, 20), bool)
    b = a.copy()
    a[5 : 5 + lx, 4 : 4 + ly, 5 : 5 + lz] = True
    b[5 + d : 5 + d + lx, 4 : 4 + ly, 5 : 5 + lz] = True
    s = 2 * (ly * lz + lx * lz + lx * ly)
    analytic = (2 * ly * lz * d + 4 * d**3 / 3) / s
    sd = compute_surface_distances(a, b, (1, 1, 1))
    assert hausdorff(sd) == pytest.approx(d)
    assert percentile_hausdorff(sd) == pytest.approx(d)
    assert average_symmetric_surface_distance(sd) == pytest.approx(analytic, rel=0.05)


@pytest.mark.parametrize(
    ("spacing", "hd", "hd95_", "assd_s", "assd_e", "nsd_s", "nsd_e"),
    [
        ((1, 1, 1), 2.449, 2.236, 1.576, 1.881, 0.910, 0.735),
    ],
)
def test_concentric_spheres(spacing, hd, hd95_, assd_s, assd_e, nsd_s, nsd_e):
    shape = (32, 32, 32)
    centre = (15.5, 15.5, 15.5)  # a voxel corner
    a, b = sphere(shape, centre, 10, spacing), sphere(shape, centre, 12, spacing)
    surfel = compute_surface_distances(a, b, spacing)
    erosion = compute_surface_distances(a, b, spacing, boundary="erosion")
    for sd, assd, nsd in ((surfel, assd_s, nsd_s), (erosion, assd_e, nsd_e)):
        assert hausdorff(sd) == pytest.approx(hd, abs=1e-3)
        assert percentile_hausdorff(sd) == pytest.approx(hd95_, abs=1e-3)
        assert average_symmetric_surface_distance(sd) == pytest.approx(assd, abs=1e-3)
        assert surface_dice(sd, 2.0) == pytest.approx(nsd, abs=1e-3)


def test_concentric_spheres_anisotropic_close_to_analytic():
    spacing = (3.0, 1.0, 1.0)
    shape = (12, 36, 36)
    centre = (5.5, 17.5, 17.5)
    a, b = sphere(shape, centre, 10, spacing), sphere(shape, centre, 12, spacing)
    for boundary in ("surfel", "erosion"):
        sd = compute_surface_distances(a, b, spacing, boundary=boundary)
        assert percentile_hausdorff(sd) == pytest.approx(2.0, abs=max(spacing))
        assert surface_dice(sd, 2.0 + max(spacing)) == 1.0


def test_hd95_separator():
    ref = np.zeros((40, 40, 40), bool)
    ref[5:15, 5:15, 5:15] = True
    pred = ref.copy()
    pred[30:33, 30:33, 30:33] = True
    surfel = compute_surface_distances(pred, ref, (1, 1, 1))
    erosion = compute_surface_distances(pred, ref, (1, 1, 1), boundary="erosion")
    assert hausdorff(surfel) == pytest.approx(31.18, abs=0.01)
    assert hausdorff(erosion) == pytest.approx(31.18, abs=0.01)
    assert percentile_hausdorff(surfel) == pytest.approx(27.75, abs=0.01)
    assert percentile_hausdorff(erosion) == pytest.approx(9.70, abs=0.01)
    assert percentile_hausdorff(erosion, variant="pooled") == 0.0


def test_public_helpers_match_the_pipeline():
    rng = np.random.default_rng(3)
    a, b = blobs(rng), blobs(rng)
    spacing = (2.0, 0.7, 0.9)
    sd = compute_surface_distances(a, b, spacing)
    assert hd95(a, b, spacing) == percentile_hausdorff(sd)
    assert normalized_surface_dice(a, b, spacing, 1.5) == surface_dice(sd, 1.5)


def test_empty_masks_follow_the_documented_rules():
    empty = np.zeros((8, 8, 8), bool)
    full = empty.copy()
    full[2:5, 2:5, 2:5] = True
    both = compute_surface_distances(empty, empty, (1, 1, 1))
    assert both.status == "both_empty"
    assert math.isnan(hausdorff(both))
    assert math.isnan(percentile_hausdorff(both))
    assert math.isnan(surface_dice(both, 1.0))
    for pred, ref, status in ((empty, full, "pred_empty"), (full, empty, "ref_empty")):
        sd = compute_surface_distances(pred, ref, (1, 1, 1))
        assert sd.status == status
        assert hausdorff(sd) == math.inf
        assert percentile_hausdorff(sd) == math.inf
        assert average_symmetric_surface_distance(sd) == math.inf
        assert surface_dice(sd, 1.0) == 0.0


def test_bad_input_raises_medseg_errors():
    a = np.zeros((4, 4, 4), bool)
    with pytest.raises(GeometryError, match="spacing"):
        hd95(a, a, (1.0, 1.0))
    with pytest.raises(GeometryError, match="shape"):
        hd95(a, np.zeros((4, 4, 5), bool), (1, 1, 1))
    with pytest.raises(GeometryError, match="bool"):
        hd95(a.astype(np.uint8), a, (1, 1, 1))
    with pytest.raises(ConfigError, match="boundary"):
        compute_surface_distances(a, a, (1, 1, 1), boundary="voxel")
    with pytest.raises(ConfigError, match="tolerance"):
        normalized_surface_dice(a, a, (1, 1, 1), -1.0)


@pytest.mark.parametrize("kdtree", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_matches_deepmind_on_random_cases(deepmind, monkeypatch, seed, kdtree):
    import medseg.evaluate.boundary as surface

    monkeypatch.setattr(surface, "_KDTREE_VOXELS_PER_POINT", 0 if kdtree else 10**9)
    rng = np.random.default_rng(seed)
    a, b = blobs(rng), blobs(rng)
    spacing = tuple(rng.uniform(0.5, 3.0, 3))
    ours = compute_surface_distances(a, b, spacing)
    theirs = deepmind.compute_surface_distances(b, a, spacing)  # (gt, pred)
    assert percentile_hausdorff(ours) == pytest.approx(
        deepmind.compute_robust_hausdorff(theirs, 95), abs=1e-5
    )
    assert hausdorff(ours) == pytest.approx(
        deepmind.compute_robust_hausdorff(theirs, 100), abs=1e-5
    )
    assert directed_average_distances(ours) == pytest.approx(
        deepmind.compute_average_surface_distance(theirs), abs=1e-5
    )
    for tol in (0.7, 1.9):
        assert surface_dice(ours, tol) == pytest.approx(
            deepmind.compute_surface_dice_at_tolerance(theirs, tol), abs=1e-9
        )


def test_matches_deepmind_in_2d(deepmind):
    rng = np.random.default_rng(11)
    a, b = blobs(rng, shape=(40, 36)), blobs(rng, shape=(40, 36))
    spacing = (1.3, 0.6)
    ours = compute_surface_distances(a, b, spacing)
    theirs = deepmind.compute_surface_distances(b, a, spacing)
    assert percentile_hausdorff(ours) == pytest.approx(
        deepmind.compute_robust_hausdorff(theirs, 95), abs=1e-5
    )
    assert surface_dice(ours, 1.0) == pytest.approx(
        deepmind.compute_surface_dice_at_tolerance(theirs, 1.0), abs=1e-9
    )


@pytest.mark.parametrize("seed", range(4))
def test_erosion_matches_monai_on_random_cases(seed):
    pytest.importorskip("monai")
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    rng = np.random.default_rng(100 + seed)
    a, b = blobs(rng), blobs(rng)
    spacing = tuple(float(s) for s in rng.uniform(0.5, 3.0, 3))
    p, r = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]
    kw = {"include_background": True, "spacing": spacing}
    sd = compute_surface_distances(a, b, spacing, boundary="erosion")
    assert percentile_hausdorff(sd) == pytest.approx(
        compute_hausdorff_distance(p, r, percentile=95, **kw).item(), abs=1e-4
    )
    assert hausdorff(sd) == pytest.approx(compute_hausdorff_distance(p, r, **kw).item(), abs=1e-4)
    assert average_symmetric_surface_distance(sd) == pytest.approx(
        compute_average_surface_distance(p, r, symmetric=True, **kw).item(), abs=1e-4
    )
    assert surface_dice(sd, 1.3) == pytest.approx(
        compute_surface_dice(p, r, [1.3], **kw).item(), abs=1e-6
    )


def test_surfel_nsd_matches_monai_subvoxels():
    pytest.importorskip("monai")
    import torch
    from monai.metrics import compute_surface_dice

    rng = np.random.default_rng(5)
    a, b = blobs(rng), blobs(rng)
    spacing = (2.0, 0.8, 1.1)
    p, r = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]
    theirs = compute_surface_dice(
        p, r, [1.5], include_background=True, spacing=spacing, use_subvoxels=True
    ).item()
    sd = compute_surface_distances(a, b, spacing)
    assert surface_dice(sd, 1.5) == pytest.approx(theirs, abs=1e-4)


def test_kdtree_and_edt_paths_agree(monkeypatch):
    import medseg.evaluate.boundary as surface

    rng = np.random.default_rng(9)
    a, b = blobs(rng, shape=(20, 24, 22)), blobs(rng, shape=(20, 24, 22))
    spacing = (2.5, 0.8, 0.8)
    monkeypatch.setattr(surface, "_KDTREE_VOXELS_PER_POINT", 0)
    kd = compute_surface_distances(a, b, spacing)
    monkeypatch.setattr(surface, "_KDTREE_VOXELS_PER_POINT", 10**9)
    dense = compute_surface_distances(a, b, spacing)
    np.testing.assert_allclose(kd.ref_to_pred, dense.ref_to_pred, atol=1e-5)
    np.testing.assert_allclose(kd.pred_to_ref, dense.pred_to_ref, atol=1e-5)
