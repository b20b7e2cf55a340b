"""The end-to-end demo on a coarse, tiny version of the brain example."""

import math

import pytest

from medseg.demo import STEPS, run_demo
from medseg.io import read_image


@pytest.mark.slow
def test_demo_runs_every_step_and_keeps_geometry(tmp_path):
    steps = []
    result = run_demo(
        tmp_path / "demo",
        cases=3,
        test_cases=1,
        spacing_mm=6.0,
        train_seconds=5.0,
        device="cpu",
        on_step=steps.append,
    )
    assert steps == list(STEPS)
    assert set(result.mean_dice) == {"grey_matter", "white_matter", "lesion"}
    (case,) = result.dice
    assert all(0.0 <= d <= 1.0 or math.isnan(d) for d in result.dice[case].values())
    for name in ("metrics_per_case.csv", "summary.json", "report.html"):
        assert (result.evaluation_dir / name).is_file()
    html = result.summary_html.read_text()
    assert "Dice on the held-out cases" in html
    assert "href='report/report.html'" in html  # the clinical report, which the demo wrote
    assert (result.summary_html.parent / "report" / "report.html").is_file()
    assert (result.summary_html.parent / "report" / "report.pdf").is_file()
    assert html.count("data:image/png;base64") >= 2  # training curve and one case overlay
    image = read_image(result.dataset_dir / "imagesTs" / f"{case}_0000.nii.gz")
    prediction = read_image(result.predictions_dir / f"{case}.nii.gz")
    assert prediction.spatial_shape == image.spatial_shape
    assert prediction.spacing == image.spacing
    assert prediction.origin == image.origin
    assert (prediction.direction == image.direction).all()
