"""Lesion detection on a mask for which cc3d numbers bool components non-consecutively.

The masks (a 2D prediction and reference from a weak-label benchmark, cropped to their union's
bounding box) made ``cc3d.connected_components`` on a bool array return 132 components with ids
up to 281, and ``lesion_metrics`` failed with an IndexError. SciPy's labelling is the reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.evaluate.detection import lesion_metrics

DATA = Path(__file__).parent / "data" / "cc3d_nonconsecutive_2d.npz"


def _masks() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(DATA)
    shape = tuple(int(v) for v in data["shape"])
    size = int(np.prod(shape))
    return tuple(np.unpackbits(data[k])[:size].reshape(shape).astype(bool) for k in ("pred", "ref"))


def test_counts_agree_with_scipy_on_masks_cc3d_numbers_with_gaps() -> None:
    pred, ref = _masks()
    full = np.ones((3, 3), bool)
    n_pred = ndimage.label(pred, structure=full)[1]
    n_ref = ndimage.label(ref, structure=full)[1]
    scores = lesion_metrics(pred, ref)
    assert scores["lesion_tp"] + scores["lesion_fp"] == n_pred
    assert scores["lesion_tp"] + scores["lesion_fn"] == n_ref
