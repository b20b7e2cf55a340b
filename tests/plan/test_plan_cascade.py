"""The cascade's planning rule (medseg.plan.cascade) through make_plan."""

from __future__ import annotations

import math

import pytest
from test_planner import CPU, fingerprint

from medseg.errors import ConfigError
from medseg.plan import PlanBudget, apply_overrides, make_plan
from medseg.plan.cascade import LOWRES_THRESHOLD
from medseg.plan.plan import cascade_labels

GPU = PlanBudget(device="cuda", base_features=32, max_features_3d=320, max_features_2d=512)


def large():
    return fingerprint([(1.0, 0.8, 0.8)] * 10, [(300, 400, 400)] * 10)


def small():
    return fingerprint([(2.0, 2.0, 2.0)] * 20, [(80, 100, 80)] * 20)


def _median_voxels(shape, full, spacing):
    return math.prod(n * f / s for n, f, s in zip(shape, full, spacing, strict=True))


@pytest.mark.parametrize("budget", [CPU, GPU])
def test_large_image_gets_lowres_and_cascade(budget):
    plan = make_plan(large(), budget=budget)
    full, low = plan.configurations["3d"], plan.configurations["3d_lowres"]
    cascade = plan.configurations["3d_cascade_fullres"]
    original = (300 * 1.0, 400 * 0.8, 400 * 0.8)
    full_median = math.prod(o / s for o, s in zip(original, full.spacing, strict=True))
    assert math.prod(full.patch_size) / full_median < LOWRES_THRESHOLD
    low_median = _median_voxels((300, 400, 400), (1.0, 0.8, 0.8), low.spacing)
    # nnU-Net's stopping rule: the low-res patch covers at least a quarter of its median image
    assert math.prod(low.patch_size) / low_median >= LOWRES_THRESHOLD
    assert all(lo > fu for lo, fu in zip(low.spacing, full.spacing, strict=True))
    assert cascade.spacing == full.spacing
    assert cascade.patch_size == full.patch_size
    assert cascade.previous_stage == "3d_lowres"
    assert low.previous_stage is None
    assert plan.default_configuration == "3d"
    assert any("3d_lowres" in r and "25%" in r for r in low.reasons)
    assert any("one extra input channel per foreground label" in r for r in cascade.reasons)
    assert any(r.startswith("cascade planned") for r in full.reasons)


@pytest.mark.parametrize("budget", [CPU, GPU])
def test_small_image_gets_no_cascade_and_says_why(budget):
    plan = make_plan(small(), budget=budget)
    assert not {"3d_lowres", "3d_cascade_fullres"} & set(plan.configurations)
    assert any(r.startswith("no cascade") for r in plan.configurations["3d"].reasons)


def test_cascade_can_be_asked_for_on_a_small_image():
    plan = make_plan(small(), budget=GPU, cascade=True)
    low = plan.configurations["3d_lowres"]
    assert low.spacing == (4.0, 4.0, 4.0)  # twice the full-resolution spacing
    assert "3d_cascade_fullres" in plan.configurations
    by_override = make_plan(small(), budget=GPU, overrides={"3d_lowres.spacing": [3.0, 3, 3]})
    assert by_override.configurations["3d_lowres"].spacing == (3.0, 3.0, 3.0)
    assert "3d_lowres" not in make_plan(large(), budget=GPU, cascade=False).configurations
    # a patch under 25 % whose search finds no 2x smaller image: planned only when asked for
    fp = small()
    plan = make_plan(fp, budget=CPU)
    assert "3d_lowres" not in plan.configurations
    assert any("leaves no room" in r for r in plan.configurations["3d"].reasons)
    asked = make_plan(fp, budget=CPU, cascade=True).configurations["3d_lowres"]
    assert asked.spacing == (4.0, 4.0, 4.0)


def test_2d_data_cannot_have_a_cascade():
    fp = fingerprint([(0.5, 0.5)] * 4, [(900, 900)] * 4)
    with pytest.raises(ConfigError, match="needs 3D images"):
        make_plan(fp, budget=CPU, cascade=True)


def test_cascade_input_channels_one_per_foreground_label():
    plan = make_plan(
        fingerprint([(1.0, 0.8, 0.8)] * 4, [(300, 400, 400)] * 4, channels=("T1", "T2")), budget=CPU
    )
    assert cascade_labels(plan) == (1, 2)
    assert plan.input_channels("3d") == 2
    assert plan.input_channels("3d_lowres") == 2
    assert plan.input_channels("3d_cascade_fullres") == 4


def test_previous_stage_must_name_a_3d_configuration():
    plan = make_plan(large(), budget=CPU)
    with pytest.raises(ConfigError, match="previous_stage"):
        apply_overrides(plan, {"3d_cascade_fullres.previous_stage": "2d"})
    with pytest.raises(ConfigError, match="previous_stage"):
        apply_overrides(plan, {"3d.previous_stage": "3d"})
