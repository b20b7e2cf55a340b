"""Planning rules on hand-made fingerprints, with expectations computed independently."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from medseg.errors import ConfigError
from medseg.plan import PlanBudget, apply_overrides, make_plan
from medseg.plan.fingerprint import ChannelIntensity, ComponentStats, Fingerprint
from medseg.plan.rules import target_spacing
from medseg.plan.validate import validate_plan

STATS = ChannelIntensity(
    mean=40.0,
    std=300.0,
    median=30.0,
    min=-1000.0,
    max=2000.0,
    percentile_00_5=-900.0,
    percentile_99_5=1500.0,
)
CPU = PlanBudget()


def fingerprint(
    spacings, shapes, *, channels=("T1",), fraction=0.9, voxels=None, labels=None, **kwargs
) -> Fingerprint:
    n = len(spacings)
    labels = labels or {"background": 0, "a": 1, "b": 2}
    return Fingerprint(
        dataset_name="toy",
        case_ids=tuple(f"c{i}" for i in range(n)),
        channel_names=dict(enumerate(channels)),
        labels=labels,
        spacings=tuple(tuple(map(float, s)) for s in spacings),
        shapes=tuple(tuple(s) for s in shapes),
        shapes_after_crop=tuple(tuple(s) for s in shapes),
        crop_fractions=(fraction,) * n,
        intensity=(STATS,) * len(channels),
        class_voxels=voxels or {0: 10_000, 1: 5000, 2: 4000},
        components={1: ComponentStats(mean_count=1, median_size_voxels=5000)},
        source_hash="test",
        **kwargs,
    )


def brain(**kwargs) -> Fingerprint:
    return fingerprint([(2.0, 2.0, 2.0)] * 20, [(80, 100, 80)] * 20, **kwargs)


def test_anisotropic_axis_takes_10th_percentile():
    spacings = [(s, 1.0, 1.0) for s in (4.0, 4.5, 5.0, 5.0, 5.0, 5.0, 6.0, 6.0)]
    fp = fingerprint(spacings, [(20, 200, 200)] * 8)
    spacing, reason = target_spacing(fp)
    assert spacing[0] == pytest.approx(np.percentile([s[0] for s in spacings], 10))
    assert spacing[1:] == (1.0, 1.0)
    assert "10th percentile" in reason


def test_anisotropy_rule_needs_few_voxels_along_the_coarse_axis():
    spacings = [(s, 1.0, 1.0) for s in (4.0, 5.0, 5.0, 6.0)]
    fp = fingerprint(spacings, [(100, 200, 200)] * 4)  # 100 * 3 > 200: rule does not apply
    spacing, reason = target_spacing(fp)
    assert spacing == (5.0, 1.0, 1.0)
    assert "10th percentile" not in reason


def test_anisotropy_rule_needs_3x_spacing():
    fp = fingerprint([(2.5, 1.0, 1.0)] * 4, [(20, 200, 200)] * 4)
    assert target_spacing(fp)[0] == (2.5, 1.0, 1.0)


def test_10th_percentile_floored_at_largest_other_spacing():
    spacings = [(0.5, 1.2, 1.0)] * 2 + [(5.0, 1.2, 1.0)] * 8
    fp = fingerprint(spacings, [(20, 200, 200)] * 10)
    assert target_spacing(fp)[0][0] == pytest.approx(1.2, abs=1e-4)


def _patch_voxels(plan, name="3d"):
    return math.prod(plan.configurations[name].patch_size)


def test_bigger_budget_gives_bigger_patch_and_batch():
    fp = brain()
    small = make_plan(fp, budget=PlanBudget(time_budget_s=300))
    large = make_plan(fp, budget=PlanBudget(time_budget_s=6000))
    assert _patch_voxels(large) > _patch_voxels(small)
    assert large.configurations["2d"].batch_size > small.configurations["2d"].batch_size
    fp = fingerprint([(2.0, 2.0, 2.0)] * 400, [(80, 100, 80)] * 400)  # 5% cap not binding
    gpu = make_plan(
        fp,
        budget=PlanBudget(
            device="cuda", memory_gb=8, base_features=32, max_features_3d=320, max_features_2d=512
        ),
    )
    gpu_big = make_plan(
        fp,
        budget=PlanBudget(
            device="cuda", memory_gb=40, base_features=32, max_features_3d=320, max_features_2d=512
        ),
    )
    assert gpu_big.configurations["3d"].batch_size > gpu.configurations["3d"].batch_size


@pytest.mark.parametrize("time_budget_s", [60, 600, 6000])
def test_patch_within_median_shape_and_divisible(time_budget_s):
    fp = fingerprint([(3.0, 0.8, 0.8)] * 6, [(40, 150, 130)] * 6)
    plan = make_plan(fp, budget=PlanBudget(time_budget_s=time_budget_s))
    median = np.array([40 * 3.0, 150 * 0.8, 130 * 0.8]) / np.array(
        plan.configurations["3d"].spacing
    )
    for config in plan.configurations.values():
        in_plane = [a for a in range(3) if a != config.plane]
        shape = median if len(config.patch_size) == 3 else median[in_plane]
        assert all(p <= round(m) for p, m in zip(config.patch_size, shape, strict=True))
        divisor = [math.prod(s[d] for s in config.network.strides) for d in range(len(shape))]
        assert all(p % d == 0 for p, d in zip(config.patch_size, divisor, strict=True))
        assert config.batch_size >= 2


def test_cpu_plan_uses_small_network_and_time_schedule():
    plan = make_plan(brain(), budget=CPU)
    config = plan.configurations["3d"]
    assert config.network.filters[0] == 8
    assert max(config.network.filters) <= 128
    iterations = config.training.epochs * config.training.iterations_per_epoch
    assert 500 <= iterations <= 3000  # docs/plan.md: ~1700 iterations of this size in 600 s
    # both budgets sit at the minimum work per iteration, so half the time is half the epochs
    half = make_plan(brain(), budget=PlanBudget(time_budget_s=300)).configurations["3d"]
    assert half.patch_size == config.patch_size
    assert abs(2 * half.training.epochs - config.training.epochs) <= 2


def test_gpu_plan_is_nnunet_sized():
    budget = PlanBudget(device="cuda", base_features=32, max_features_3d=320, max_features_2d=512)
    plan = make_plan(brain(), budget=budget)
    config = plan.configurations["3d"]
    assert config.network.filters[0] == 32
    assert max(config.network.filters) == 320
    assert (config.training.epochs, config.training.iterations_per_epoch) == (1000, 250)
    assert config.patch_size == (80, 96, 80)  # nnU-Net's stock plan for this shape (docs/plan.md)
    assert config.network.deep_supervision
    assert config.training.augment
    assert config.training.mirror_axes == (0, 1, 2)
    assert (config.training.optimizer, config.training.learning_rate) == ("sgd", 0.01)


def test_cpu_time_budget_plan_trains_without_deep_supervision():
    config = make_plan(brain(), budget=CPU).configurations["3d"]
    assert config.training.time_budget_s is not None
    assert not config.network.deep_supervision
    assert not config.training.augment
    assert config.training.mirror_axes == ()
    assert any("no deep supervision" in reason for reason in config.reasons)
    assert any("no data augmentation" in reason for reason in config.reasons)
    training = config.training
    assert (training.optimizer, training.learning_rate, training.weight_decay) == (
        "adamw",
        1e-2,
        0.01,
    )
    assert any(reason.startswith("optimizer: AdamW") for reason in config.reasons)


def test_normalisation_from_channel_names():
    fp = brain(channels=("CT", "T2", "noNorm"), fraction=0.5)
    plan = make_plan(fp, budget=CPU)
    ct, t2, raw = plan.normalization
    assert (ct.scheme, ct.clip_low, ct.clip_high, ct.mean, ct.std) == (
        "ct",
        -900.0,
        1500.0,
        40.0,
        300.0,
    )
    assert not ct.use_mask
    assert t2.scheme == "zscore"
    assert t2.use_mask
    assert raw.scheme == "none"
    assert not make_plan(brain(fraction=0.9), budget=CPU).normalization[0].use_mask


def test_separate_axis_for_strong_anisotropy():
    fp = fingerprint([(5.0, 1.0, 1.0)] * 4, [(60, 100, 100)] * 4)
    config = make_plan(fp, budget=CPU).configurations["3d"]
    assert config.separate_axis == 0
    assert make_plan(brain(), budget=CPU).configurations["3d"].separate_axis is None


def test_rare_class_gets_weight_and_centred_patches():
    fp = brain(
        labels={"background": 0, "gm": 1, "wm": 2, "lesion": 3},
        voxels={0: 100_000, 1: 40_000, 2: 50_000, 3: 200},
    )
    training = make_plan(fp, budget=CPU).configurations["3d"].training
    assert training.class_weights[:3] == (1.0, 1.0, 1.0)
    assert training.class_weights[3] == pytest.approx(min(10, round(math.sqrt(50_000 / 200))))
    assert training.oversample_labels == (3,)
    assert training.oversample_foreground > 0.33
    common = make_plan(brain(), budget=CPU).configurations["3d"].training
    assert common.class_weights is None
    assert common.oversample_labels == ()


def test_regions_and_ignore_label():
    regions = brain(
        labels={"background": 0, "a": 1, "b": 2},
        regions={"whole": (1, 2), "core": (2,)},
        region_order=(1, 2),
    )
    plan = make_plan(regions, budget=CPU)
    assert plan.num_classes == 2
    assert plan.configurations["3d"].training.loss == "dice_bce"
    ignore = brain(labels={"background": 0, "a": 1, "b": 2, "ignore": 3}, ignore_label=3)
    plan = make_plan(ignore, budget=CPU)
    assert plan.num_classes == 3
    assert plan.ignore_label == 3
    assert plan.configurations["3d"].training.extra_losses == {}  # no ignored voxel counted


SPARSE = {"entropy": 0.1}


@pytest.mark.parametrize(
    ("ignored", "expected"), [(0, {}), (18_999, {}), (19_000, SPARSE), (10**6, SPARSE)]
)
def test_sparse_labels_get_the_entropy_term(ignored: int, expected) -> None:
    voxels = {0: 10_000, 1: 5000, 2: 4000, 3: ignored}  # 19,000 labelled: half at 19,000
    fp = brain(labels={"background": 0, "a": 1, "b": 2, "ignore": 3}, ignore_label=3, voxels=voxels)
    plan = make_plan(fp, budget=CPU)
    for config in plan.configurations.values():
        assert config.training.extra_losses == expected
        assert any("entropy term" in r for r in config.reasons)
    without_ignore = brain(voxels={0: 10_000, 1: 5000, 2: 4000})
    assert make_plan(without_ignore, budget=CPU).configurations["3d"].training.extra_losses == {}


def test_every_object_marked_adds_the_absence_term_to_3d_patches_only() -> None:
    voxels = {0: 1000, 1: 500, 2: 400, 3: 10**6}
    labels = {"background": 0, "a": 1, "lesion": 2, "ignore": 3}
    fp = brain(labels=labels, ignore_label=3, voxels=voxels, every_object_marked={2: 9.0})
    plan = make_plan(fp, budget=CPU)
    assert plan.every_object_marked == {2: 9.0}
    for name, config in plan.configurations.items():
        planar = len(config.patch_size) == 2
        expected = SPARSE if planar else {**SPARSE, "absence": 1.0}
        assert config.training.extra_losses == expected, name
        said = "cannot see the marks" if planar else "lesion within 9 mm of a mark"
        assert any(said in r for r in config.reasons), name
    with pytest.raises(ConfigError, match="absence needs 3D patches"):
        apply_overrides(plan, {"2d.training.extra_losses": {"absence": 1.0}})
    unmarked = make_plan(brain(labels=labels, ignore_label=3, voxels=voxels), budget=CPU)
    with pytest.raises(ConfigError, match="absence needs sparse labels that mark every"):
        apply_overrides(unmarked, {"3d.training.extra_losses": {"absence": 1.0}})
    with pytest.raises(ConfigError, match=r"every_object_marked\.7: needs a foreground"):
        validate_plan(dataclasses.replace(plan, every_object_marked={7: 9.0}))
    with pytest.raises(ConfigError, match=r"every_object_marked\.2: needs a foreground"):
        validate_plan(dataclasses.replace(plan, every_object_marked={2: 0.0}))


def test_2d_data_gets_only_2d():
    fp = fingerprint([(0.5, 0.5)] * 4, [(300, 280)] * 4)
    plan = make_plan(fp, budget=CPU)
    assert set(plan.configurations) == {"2d"}
    assert plan.default_configuration == "2d"


def test_every_configuration_explains_itself():
    plan = make_plan(brain(), budget=CPU)
    for config in plan.configurations.values():
        text = " ".join(config.reasons)
        for word in ("target spacing", "patch", "batch size", "network", "schedule", "z-score"):
            assert word in text


def test_plan_from_dataset(make_dataset):
    plan = make_plan(make_dataset(), budget=CPU)
    assert plan.default_configuration == "3d"
    assert set(plan.configurations) == {"2d", "3d", "2.5d", "2.5d_plane1", "2.5d_plane2"}
    assert plan.ensembles == {"multiplane": ("2.5d", "2.5d_plane1", "2.5d_plane2")}
    assert plan.labels == {"background": 0, "inner": 1, "outer": 2, "lesion": 3}
    assert plan.configurations["3d"].patch_size <= (16, 20, 18)


def test_budget_for_this_cpu():
    budget = PlanBudget.for_device("cpu", time_budget_s=120)
    assert budget.device == "cpu"
    assert budget.cpu_cores >= 1
    assert budget.time_budget_s == 120
    assert budget.reference_iteration_s in (0.35, 1.0)


def test_cuda_budget_without_gpu_is_a_config_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        PlanBudget.for_device("cuda")
    with pytest.raises(ConfigError, match="expected auto, cpu or cuda"):
        PlanBudget.for_device("tpu")


def test_coarsest_axis_goes_first():
    fp = fingerprint([(0.8, 0.9, 4.0)] * 4, [(200, 180, 30)] * 4)
    plan = make_plan(fp, budget=CPU)
    assert plan.transpose == (2, 0, 1)
    config = plan.configurations["3d"]
    assert config.spacing[0] == 4.0  # in network (transposed) order
    assert config.separate_axis == 0
    assert plan.configurations["2d"].spacing == (0.8, 0.9)
    assert any("transposed" in r for r in config.reasons)
    assert make_plan(brain(), budget=CPU).transpose == (0, 1, 2)


def test_summary_shows_the_clock_schedule_and_the_reasons():
    from rich.console import Console

    from medseg.plan.summary import plan_summary

    console = Console(record=True, width=200)
    cpu = make_plan(brain(), budget=CPU)
    console.print(plan_summary(cpu))
    text = console.export_text()
    assert "600 s on the clock" in text
    assert all(reason[:40] in text for reason in cpu.configurations["3d"].reasons)
    gpu = PlanBudget(device="cuda", base_features=32, max_features_3d=320, max_features_2d=512)
    console = Console(record=True, width=200)
    console.print(plan_summary(make_plan(brain(), budget=gpu)))
    assert "1000 x 250 iterations" in console.export_text()


# nnU-Net's ResEnc M/L/XL presets are GPU memory targets of the planner
GPU = PlanBudget(device="cuda", memory_gb=8, base_features=32, max_features_3d=320)
RESENC = {"network.architecture": "resenc_unet"}


def _fp():
    return fingerprint([(1.0, 1.0, 1.0)] * 400, [(200, 240, 200)] * 400)


@pytest.mark.parametrize(("size", "memory_gb"), [("M", 8), ("L", 24), ("XL", 40)])
def test_resenc_preset_plans_like_its_memory_target(size: str, memory_gb: float) -> None:
    preset = make_plan(_fp(), budget=GPU, overrides={**RESENC, "network.size": size})
    explicit = make_plan(_fp(), budget=dataclasses.replace(GPU, memory_gb=memory_gb))
    for name in ("3d", "2d"):
        a, b = preset.configurations[name], explicit.configurations[name]
        assert (a.patch_size, a.batch_size) == (b.patch_size, b.batch_size)
        assert (a.network.architecture, a.network.size) == ("resenc_unet", size)
    assert any(f"ResEnc {size} preset" in r for r in preset.configurations["3d"].reasons)


def test_resenc_presets_grow_the_patch_and_leave_cpu_plans_alone() -> None:
    m = make_plan(_fp(), budget=GPU, overrides={**RESENC, "3d.network.size": "M"})
    xl = make_plan(_fp(), budget=GPU, overrides={**RESENC, "3d.network.size": "XL"})
    voxels = [
        c.configurations["3d"].batch_size * _prod(c.configurations["3d"].patch_size)
        for c in (m, xl)
    ]
    assert voxels[1] > 2 * voxels[0]
    cpu = PlanBudget()
    plain = make_plan(_fp(), budget=cpu).configurations["3d"]
    xl_cpu = make_plan(_fp(), budget=cpu, overrides={**RESENC, "network.size": "XL"})
    assert xl_cpu.configurations["3d"].patch_size == plain.patch_size
    assert any("time budget" in r for r in xl_cpu.configurations["3d"].reasons)
    # a width preset of another network is no planning input
    sized = make_plan(_fp(), budget=GPU, overrides={"network.size": "L"}).configurations["3d"]
    assert sized.patch_size == make_plan(_fp(), budget=GPU).configurations["3d"].patch_size


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def test_planar_configurations_over_the_three_planes():
    """Anisotropic data: each plane's configuration takes the other two axes' spacing."""
    fp = fingerprint([(3.0, 0.8, 0.8)] * 6, [(40, 150, 130)] * 6)
    plan = make_plan(fp, budget=CPU)
    full = plan.configurations["3d"].spacing
    assert plan.default_configuration == "3d"
    assert plan.ensembles == {"multiplane": ("2.5d", "2.5d_plane1", "2.5d_plane2")}
    for plane, name in enumerate(("2.5d", "2.5d_plane1", "2.5d_plane2")):
        config = plan.configurations[name]
        assert (config.plane, config.neighbours) == (plane, 2)
        assert config.spacing == tuple(full[a] for a in range(3) if a != plane)
        assert plan.input_channels(name) == 5
        assert "2 neighbouring slices on each side" in " ".join(config.reasons)
    assert plan.configurations["2d"].neighbours == 0
    # the slice axis is the coarse one only for plane 0: the others keep it in-plane, with
    # kernel 1 along it at first (nnU-Net's rule for axes coarser than 2x the finest)
    assert plan.configurations["2.5d_plane1"].network.kernel_sizes[0] == (1, 3)
    edited = apply_overrides(plan, {"2.5d.neighbours": 1, "configurations.2.5d_plane2.plane": 2})
    assert edited.input_channels("2.5d") == 3


def test_summary_lists_slices_and_the_ensemble():
    from rich.console import Console

    from medseg.plan.summary import plan_summary

    console = Console(record=True, width=300)
    console.print(plan_summary(make_plan(brain(), budget=CPU)))
    text = console.export_text()
    assert "along axis 1, +-2 neighbours" in text
    assert "ensemble multiplane: 2.5d + 2.5d_plane1 + 2.5d_plane2" in text
