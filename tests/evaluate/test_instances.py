"""Instance metrics: hand-computed cases and StarDist's implementation as a reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from medseg.errors import GeometryError
from medseg.evaluate.instances import instance_metrics, instance_metrics_per_class


def _two_objects():
    ref = np.zeros((20, 20), int)
    ref[2:8, 2:8] = 1  # 36 px
    ref[10:15, 10:15] = 2  # 25 px
    pred = np.zeros((20, 20), int)
    pred[3:8, 2:8] = 5  # 30 px inside object 1: IoU 30/36
    pred[12:18, 12:18] = 3  # 36 px, 9 px on object 2: IoU 9/52
    return pred, ref


def test_hand_computed_case():
    pred, ref = _two_objects()
    s = instance_metrics(pred, ref)
    assert (s.tp, s.fp, s.fn, s.n_pred, s.n_ref) == (1, 1, 1, 2, 2)
    assert s.f1 == pytest.approx(0.5)
    assert s.rq == s.f1
    assert s.sq == pytest.approx(30 / 36)
    assert s.pq == pytest.approx(0.5 * 30 / 36)
    assert s.aji == pytest.approx((30 + 9) / (36 + 52))
    low = instance_metrics(pred, ref, iou_threshold=0.1)
    assert low.tp == 2
    assert low.sq == pytest.approx((30 / 36 + 9 / 52) / 2)


def test_merge_counts_in_aji_but_never_matches():
    ref = np.zeros((10, 10), int)
    ref[:, :5], ref[:, 5:] = 1, 2
    pred = np.ones((10, 10), int) * 7
    s = instance_metrics(pred, ref)
    assert (s.tp, s.fp, s.fn) == (0, 1, 2)
    assert s.pq == 0.0
    assert math.isnan(s.sq)
    assert s.aji == pytest.approx((50 + 50) / (100 + 100))


def test_relabelled_identical_maps_score_one():
    ref, _ = ndimage.label(np.random.default_rng(0).random((64, 64)) > 0.7)
    pred = np.where(ref > 0, ref * 3 + 100, 0)
    s = instance_metrics(pred, ref)
    assert s.f1 == s.pq == s.aji == s.sq == 1.0


def test_empty_cases():
    empty = np.zeros((8, 8), int)
    one = empty.copy()
    one[2:4, 2:4] = 1
    both = instance_metrics(empty, empty)
    assert np.isnan([both.f1, both.pq, both.aji, both.sq]).all()
    missed = instance_metrics(empty, one)
    assert (missed.f1, missed.pq, missed.aji, missed.fn) == (0.0, 0.0, 0.0, 1)
    spurious = instance_metrics(one, empty)
    assert (spurious.f1, spurious.pq, spurious.aji, spurious.fp) == (0.0, 0.0, 0.0, 1)


def test_bad_inputs():
    with pytest.raises(GeometryError, match="shape"):
        instance_metrics(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match="integer"):
        instance_metrics(np.zeros((4, 4)), np.zeros((4, 4), int))
    with pytest.raises(ValueError, match="iou_threshold"):
        instance_metrics(np.zeros((4, 4), int), np.zeros((4, 4), int), iou_threshold=1.0)


def _blobs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((160, 160)), 3)
    labels, _ = ndimage.label(field > np.quantile(field, 0.7))
    return labels


@pytest.mark.parametrize("threshold", [0.31, 0.5, 0.7])
def test_agrees_with_stardist_matching(threshold):
    matching = pytest.importorskip("stardist.matching")
    ref = _blobs(1)
    pred = ndimage.grey_dilation(_blobs(1), size=3) * (_blobs(2) >= 0)  # grown objects
    pred = np.where(np.random.default_rng(3).random(pred.shape) < 0.02, 0, pred)
    pred[:40, :40] = _blobs(4)[:40, :40]  # some unrelated objects
    ours = instance_metrics(pred, ref, iou_threshold=threshold)
    # StarDist matches at IoU >= thresh, medseg at IoU > threshold (the data has IoUs of exactly
    # 0.5): StarDist (float32 IoUs) at threshold + 1e-6 is the same rule on these small objects
    theirs = matching.matching(ref, pred, thresh=threshold + 1e-6, criterion="iou")
    assert (ours.tp, ours.fp, ours.fn) == (theirs.tp, theirs.fp, theirs.fn)
    assert ours.f1 == pytest.approx(theirs.f1)
    assert ours.precision == pytest.approx(theirs.precision)
    assert ours.pq == pytest.approx(theirs.panoptic_quality, rel=1e-5)
    assert ours.sq == pytest.approx(theirs.mean_matched_score, rel=1e-5)


def test_per_class_uses_the_majority_class_of_each_object():
    pred, ref = _two_objects()
    classes = np.zeros_like(ref)
    classes[:9] = 1  # object 1 (rows 2-7) and prediction 5 are class 1
    classes[9:] = 2
    scores = instance_metrics_per_class(pred, ref, classes, classes)
    assert set(scores) == {1, 2}
    assert (scores[1].tp, scores[1].fp, scores[1].fn) == (1, 0, 0)
    assert (scores[2].tp, scores[2].fp, scores[2].fn) == (0, 1, 1)


def test_folders_and_cli(tmp_path):
    import json

    from PIL import Image as PILImage
    from typer.testing import CliRunner

    from medseg.cli.main import app_typer
    from medseg.evaluate.instances import evaluate_instance_folders

    pred_dir, ref_dir, out = tmp_path / "pred", tmp_path / "ref", tmp_path / "out"
    pred_dir.mkdir()
    ref_dir.mkdir()
    pred, ref = _two_objects()
    for case in ("a", "b"):
        PILImage.fromarray(pred.astype(np.uint16)).save(pred_dir / f"{case}.png")
        PILImage.fromarray(ref.astype(np.uint16)).save(ref_dir / f"{case}.png")
    result = evaluate_instance_folders(pred_dir, ref_dir, out_dir=out)
    assert result.cases["a"].pq == pytest.approx(0.5 * 30 / 36)
    summary = json.loads((out / "instances_summary.json").read_text())
    assert summary["pooled"] == {"tp": 2, "fp": 2, "fn": 2, "f1": 0.5}
    assert (out / "instances_per_case.csv").read_text().startswith("case,tp,fp,fn")
    cli = CliRunner().invoke(
        app_typer,
        ["evaluate", str(pred_dir), str(ref_dir), "--instances", "--iou-threshold", "0.1"],
    )
    assert cli.exit_code == 0, cli.output
    assert "0.503" in cli.stdout  # PQ at IoU > 0.1: (30/36 + 9/52) / 2 * 1.0
    (pred_dir / "a.png").unlink()
    from medseg.errors import DatasetError

    with pytest.raises(DatasetError, match="without a partner"):
        evaluate_instance_folders(pred_dir, ref_dir)
