"""Report pieces: worst-case ranking, the gallery figure and self-containment."""

from __future__ import annotations

import math

from medseg.evaluate.html_report import find_image, worst_cases


def test_worst_cases_rank_by_mean_dice_and_skip_undefined():
    rows = [
        {"case": "a", "class": "x", "dice": 0.9},
        {"case": "a", "class": "y", "dice": 0.5},
        {"case": "b", "class": "x", "dice": 0.2},
        {"case": "c", "class": "x", "dice": math.nan},
    ]
    assert worst_cases(rows, k=5) == [("b", 0.2), ("a", 0.7)]


def test_find_image_prefers_channel_zero(tmp_path):
    (tmp_path / "c1_0000.nii.gz").write_bytes(b"")
    (tmp_path / "c10_0000.nii.gz").write_bytes(b"")
    assert find_image(tmp_path, "c1") == tmp_path / "c1_0000.nii.gz"
    assert find_image(tmp_path, "c2") is None
    assert find_image(None, "c1") is None
