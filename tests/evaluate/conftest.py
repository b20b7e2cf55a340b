"""Fixtures for medseg.evaluate: analytic masks and tiny synthetic NIfTI datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evaluate_shapes import OBLIQUE, SPACING, corrupt, make_case_labels, write_label

from medseg.io import Image, write_image


@pytest.fixture
def deepmind(monkeypatch):
    """DeepMind surface-distance (test dependency), patched for NumPy 2 (it spells np.Inf)."""
    module = pytest.importorskip("surface_distance")
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    return module


@pytest.fixture
def dataset(tmp_path):
    """An nnU-Net-style dataset (dataset.json, imagesTr, labelsTr) and a corrupted copy.

    Returns (dataset root, prediction folder, list of case ids).
    """
    rng = np.random.default_rng(7)
    root = tmp_path / "Dataset001_Toy"
    (root / "labelsTr").mkdir(parents=True)
    (root / "imagesTr").mkdir()
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    cases = [f"toy_{i:03d}" for i in range(4)]
    for case in cases:
        labels = make_case_labels(rng)
        write_label(labels, root / "labelsTr" / f"{case}.nii.gz")
        image = labels * 100.0 + rng.normal(0, 20, labels.shape)
        write_image(
            Image.from_array(image[None].astype(np.float32), spacing=SPACING, direction=OBLIQUE),
            root / "imagesTr" / f"{case}_0000.nii.gz",
        )
        write_label(corrupt(labels, rng), pred_dir / f"{case}.nii.gz")
    meta = {
        "channel_names": {"0": "T1"},
        "labels": {"background": 0, "ball": 1, "box": 2},
        "numTraining": len(cases),
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root, pred_dir, cases
