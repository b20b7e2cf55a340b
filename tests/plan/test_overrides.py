"""Overrides, plan.json round trip and validation of hand edits."""

from __future__ import annotations

import json
import math

import pytest

from medseg.errors import ConfigError
from medseg.plan import (
    PlanBudget,
    apply_overrides,
    load_plan,
    make_plan,
    parse_assignment,
    save_plan,
)
from medseg.plan.fingerprint import ChannelIntensity, Fingerprint

STATS = ChannelIntensity(
    mean=0.0, std=1.0, median=0.0, min=-1.0, max=1.0, percentile_00_5=-1.0, percentile_99_5=1.0
)


@pytest.fixture
def plan():
    fp = Fingerprint(**plan_fingerprint_kwargs())
    return make_plan(fp, budget=PlanBudget())


def test_dotted_keys_edit_configurations_and_plan(plan):
    edited = apply_overrides(
        plan,
        {
            "3d.batch_size": 4,
            "training.learning_rate": 0.001,
            "num_folds": 3,
            "3d.training.mirror_axes": [1, 2],
        },
    )
    assert edited.configurations["3d"].batch_size == 4
    assert all(c.training.learning_rate == 0.001 for c in edited.configurations.values())
    assert edited.num_folds == 3
    assert edited.configurations["3d"].training.mirror_axes == (1, 2)
    assert edited.configurations["2d"].batch_size == plan.configurations["2d"].batch_size
    assert (
        edited.configurations["2d"].training.mirror_axes
        == plan.configurations["2d"].training.mirror_axes
    )


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"3d.nonsense": 1}, "unknown key"),
        ({"training.nonsense": 1}, "unknown key"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"3d.batch_size": "four"}, "batch_size: expected an integer"),
        ({"training.loss": "hinge"}, "is not one of"),
        ({"3d.patch_size": [63, 64, 64]}, "not divisible"),
        ({"3d.patch_size": [64, 64]}, "expected 3 values|needs 3 values"),
        ({"training.class_weights": [1.0, 2.0, 3.0]}, "class_weights needs 2 values"),
        ({"default_configuration": "4d"}, "default_configuration"),
        ({"training.weight_ema": 1.0}, "weight_ema must be in"),
        (
            {"training.weight_ema": 0.99, "training.time_budget_s": None},
            "weight_ema needs a time-budgeted run",
        ),
    ],
)
def test_bad_overrides_raise_config_error(plan, overrides, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(plan, overrides)


def test_a_shorthand_key_skips_the_configurations_it_would_make_inconsistent(plan, caplog):
    # lesion synthesis cannot run on a 2.5D input (neighbour slices as channels): the shorthand
    # sets it where it can, and the 2.5D configurations keep theirs, with a log line each
    assert plan.configurations["2.5d"].neighbours > 0
    key = "training.lesion_synthesis.probability"
    with caplog.at_level("INFO", logger="medseg.plan.overrides"):
        edited = apply_overrides(plan, {key: 0.5, "training.learning_rate": 0.002})
    planar = {name for name, c in plan.configurations.items() if c.neighbours > 0}
    assert planar
    assert set(plan.configurations) - planar
    for name, config in edited.configurations.items():
        expected = plan.configurations[name].training.lesion_synthesis.probability
        assert config.training.lesion_synthesis.probability == (expected if name in planar else 0.5)
        # the other shorthand of the same call is not applied there either
        lr = plan.configurations[name].training.learning_rate if name in planar else 0.002
        assert config.training.learning_rate == lr
    assert sum(f"not applied to configuration {n}" in caplog.text for n in planar) == len(planar)


def test_a_key_aimed_at_one_configuration_stays_an_error_there(plan):
    with pytest.raises(ConfigError, match="lesion_synthesis works on single slices"):
        apply_overrides(plan, {"2.5d.training.lesion_synthesis.probability": 0.5})


def test_a_shorthand_that_fits_no_configuration_is_an_error(plan):
    with pytest.raises(ConfigError, match="learning_rate must be > 0"):
        apply_overrides(plan, {"training.learning_rate": -1.0})


def test_named_keys_still_apply_where_a_shorthand_was_refused(plan):
    edited = apply_overrides(
        plan, {"training.lesion_synthesis.probability": 0.5, "2.5d.batch_size": 7}
    )
    assert edited.configurations["2.5d"].batch_size == 7
    assert edited.configurations["3d"].training.lesion_synthesis.probability == 0.5


def test_patch_override_in_make_plan_rederives_topology():
    fp_plan = make_plan(
        Fingerprint(**plan_fingerprint_kwargs()),
        budget=PlanBudget(),
        overrides={"3d.patch_size": [40, 40, 40], "3d.batch_size": 3, "3d.training.epochs": 7},
    )
    config = fp_plan.configurations["3d"]
    assert config.patch_size == (40, 40, 40)
    assert config.batch_size == 3
    assert config.training.epochs == 7
    for d in range(3):
        assert 40 % math.prod(s[d] for s in config.network.strides) == 0
    assert any("set by override" in r for r in config.reasons)


def plan_fingerprint_kwargs():
    return dict(
        dataset_name="toy",
        case_ids=("a", "b"),
        channel_names={0: "CT"},
        labels={"background": 0, "organ": 1},
        spacings=((1.0, 1.0, 1.0),) * 2,
        shapes=((96, 96, 96),) * 2,
        shapes_after_crop=((96, 96, 96),) * 2,
        crop_fractions=(1.0, 1.0),
        intensity=(STATS,),
        class_voxels={0: 900, 1: 100},
        components={},
        source_hash="x",
    )


def test_plan_json_round_trip(plan, tmp_path):
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    assert load_plan(path) == plan
    text = path.read_text()
    assert json.loads(text)["default_configuration"] == "3d"
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_hand_edited_plan_with_bad_key_or_type(plan, tmp_path):
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    _edit(path, lambda d: d["configurations"]["3d"]["training"].update(epochz=3))
    with pytest.raises(ConfigError, match="epochz"):
        load_plan(path)
    save_plan(plan, path)
    _edit(path, lambda d: d["configurations"]["3d"].update(batch_size="2"))
    with pytest.raises(ConfigError, match=r"plan\.json.*batch_size"):
        load_plan(path)
    save_plan(plan, path)
    _edit(path, lambda d: d["configurations"]["3d"].update(patch_size=[50, 64, 64]))
    with pytest.raises(ConfigError, match="not divisible"):
        load_plan(path)


def test_hand_edit_that_fits_is_accepted(plan, tmp_path):
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    _edit(path, lambda d: d["configurations"]["3d"]["training"].update(epochs=3))
    assert load_plan(path).configurations["3d"].training.epochs == 3


def test_parse_assignment():
    assert parse_assignment("training.learning_rate=0.001") == ("training.learning_rate", 0.001)
    assert parse_assignment("3d.patch_size=[32,32,32]") == ("3d.patch_size", [32, 32, 32])
    assert parse_assignment("training.loss=dice_bce") == ("training.loss", "dice_bce")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignment("epochs")
