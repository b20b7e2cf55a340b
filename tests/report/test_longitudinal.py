"""Lesion matching with a prior scan: a shifted copy, new and resolved lesions, orientation."""

from __future__ import annotations

import numpy as np
import pytest
from report_shapes import make_image

from medseg.errors import GeometryError
from medseg.report import PriorScan, compute_findings

NAMES = {1: "organ", 2: "lesion"}
EYE = {"spacing": (2.0, 1.0, 1.0), "origin": (0.0, 0.0, 0.0), "direction": np.eye(3)}


def _pair(labels, geometry):
    return make_image(labels.astype(np.float32), **geometry), make_image(labels, **geometry)


def _labels():
    labels = np.ones((12, 40, 40), np.uint8)
    labels[3:7, 5:13, 5:13] = 2  # A: 256 voxels
    labels[3:7, 25:33, 25:33] = 2  # B
    return labels


def test_shifted_copy_matches_new_and_resolved():
    prior_labels = _labels()
    prior_labels[8:10, 30:34, 4:8] = 2  # C: only in the prior -> resolved
    current = _labels()[:, 3:, 2:]  # the same anatomy, cropped: the grid starts 3 mm, 2 mm later
    current = np.pad(current, ((0, 0), (0, 3), (0, 2)), constant_values=1)
    current[3:7, 2:10, 3:15] = 2  # A grown from 8 to 12 voxels in x (was 3:11)
    current[9:11, 14:18, 14:18] = 2  # D: new
    shifted = {**EYE, "origin": (0.0, 3.0, 2.0)}
    image, seg = _pair(current, shifted)
    findings = compute_findings(image, seg, names=NAMES, prior=PriorScan(*_pair(prior_labels, EYE)))
    change = findings.change
    assert change is not None
    assert not change.same_geometry
    assert "No registration" in change.note
    by_status = {}
    for match in change.matches:
        by_status.setdefault(match.status, []).append(match)
    assert len(by_status["persistent"]) == 2
    assert change.new == 1
    assert change.resolved == 1
    grown = max(by_status["persistent"], key=lambda m: m.volume_current_ml)
    assert grown.change_percent == pytest.approx(50.0)
    assert change.total_prior_ml == pytest.approx((256 * 2 + 32) * 2e-3)
    assert change.total_current_ml == pytest.approx((384 + 256 + 32) * 2e-3)


def test_prior_with_the_same_grid_says_so():
    image, seg = _pair(_labels(), EYE)
    findings = compute_findings(image, seg, names=NAMES, prior=PriorScan(image, seg))
    assert findings.change.same_geometry
    assert findings.change.total_change_percent == pytest.approx(0.0)
    assert all(m.status == "persistent" for m in findings.change.matches)


def test_prior_in_another_orientation_is_a_clear_error():
    image, seg = _pair(_labels(), EYE)
    flipped = {**EYE, "direction": np.diag([1.0, -1.0, 1.0])}
    prior = PriorScan(*_pair(_labels(), flipped))
    sources = {"image": "now.nii.gz", "prior_image": "before.nii.gz"}
    with pytest.raises(GeometryError, match=r"before\.nii\.gz.*orientation.*now\.nii\.gz"):
        compute_findings(image, seg, names=NAMES, prior=prior, sources=sources)
