"""``make_plan``: the nnU-Net rules fitted to a compute budget (docs/plan.md)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.data.dataset import Dataset, LabelSpec
from medseg.errors import ConfigError
from medseg.plan import rules
from medseg.plan.budget import PlanBudget, network_preset_budget
from medseg.plan.cascade import CASCADE, LOWRES, plan_cascade
from medseg.plan.fingerprint import Fingerprint, extract_fingerprint
from medseg.plan.overrides import apply_overrides
from medseg.plan.plan import Configuration, NetworkConfig, Plan, TrainingConfig
from medseg.plan.topology import (
    Topology,
    feature_map_size,
    pool_and_conv_props,
    shrink_axis,
    stage_filters,
)

REFERENCE = {3: 560e6, 2: 85e6}
"""nnU-Net's feature-map budget at 8 GB (3D at batch 2, 2D at batch 12)."""
REFERENCE_GB = 8.0
REFERENCE_BATCH = {3: 2, 2: 12}
INITIAL_PATCH_EDGE = {3: 256, 2: 2048}
CPU_REFERENCE_PATCH = (64, 64, 64)
"""Patch of the CPU reference iteration (``PlanBudget.reference_iteration_s``)."""
MAX_DATASET_COVERED = 0.05
MIN_BATCH = 2
CPU_WARMUP_FRACTION = 0.05
"""CPU plans: linear learning-rate warm-up over this fraction of the time budget."""
CPU_CASE_VALIDATIONS = 3
"""CPU plans: whole-case validations per run (second half of the budget, last at the end)."""
CPU_OPTIMIZER = {"optimizer": "adamw", "learning_rate": 1e-2, "weight_decay": 0.01}
"""CPU plans: AdamW (measured against nnU-Net's SGD in 600 s runs, docs/train.md)."""
PLANNED_KEYS = ("spacing", "patch_size", "batch_size")
"""Configuration fields that, when overridden, are planning inputs rather than edits."""


def make_plan(
    dataset_or_fingerprint: Dataset | Fingerprint,
    *,
    budget: PlanBudget | None = None,
    overrides: Mapping[str, Any] | None = None,
    cascade: bool | None = None,
) -> Plan:
    """Plan preprocessing, network and training for a dataset.

    Parameters
    ----------
    dataset_or_fingerprint : Dataset or Fingerprint
        A dataset is fingerprinted first (see :func:`extract_fingerprint`).
    budget : PlanBudget, optional
        Defaults to :meth:`PlanBudget.for_device` (CUDA if available, else this CPU).
    overrides : mapping, optional
        Dotted keys as in :func:`apply_overrides`. ``<config>.spacing``, ``.patch_size`` and
        ``.batch_size`` are planning inputs: the topology and the batch follow them (also for
        ``3d_lowres``; any ``3d_lowres.*`` or ``3d_cascade_fullres.*`` key plans the cascade).
    cascade : bool, optional
        ``3d_lowres`` + ``3d_cascade_fullres``: ``None`` plans them where the image is far larger
        than the patch (:mod:`medseg.plan.cascade`), ``True`` always (3D data), ``False`` never.

    Returns
    -------
    Plan
        ``3d`` (default), ``2d`` and the planar configurations for 3D data, plus the cascade's two
        where planned; ``2d`` for 2D data. Every decision explained in ``Configuration.reasons``.
    """
    fp = (
        dataset_or_fingerprint
        if isinstance(dataset_or_fingerprint, Fingerprint)
        else extract_fingerprint(dataset_or_fingerprint)
    )
    overrides = dict(overrides or {})
    budget, preset_reason = network_preset_budget(budget or PlanBudget.for_device(), overrides)
    spec = fp.label_spec
    if spec.regions:
        num_classes = len(spec.regions)
        label_values: tuple[int, ...] = ()
    else:
        label_values = tuple(v for v in spec.values if v != spec.ignore)
        num_classes = len(label_values)
    spacing, spacing_reason = rules.target_spacing(fp)
    norm, norm_reasons = rules.normalization(fp)
    common = [spacing_reason, *norm_reasons, _label_reason(spec, num_classes)]
    if preset_reason:
        common.append(preset_reason)
    order: tuple[int, ...] = ()
    if fp.ndim == 3:
        order, order_reason = rules.transpose(spacing)
        common.append(order_reason)
        fp = _transposed(fp, order)
        spacing = tuple(spacing[a] for a in order)
    names = ["3d", "2d", *rules.PLANAR_SET] if fp.ndim == 3 else ["2d"]
    asked = cascade or any(k.split(".")[0] in (LOWRES, CASCADE) for k in overrides)
    if asked and fp.ndim != 3:
        raise ConfigError("the cascade (3d_lowres, 3d_cascade_fullres) needs 3D images")
    configurations = {}
    for name in names:
        fixed = {
            k: overrides.pop(f"{name}.{k}") for k in PLANNED_KEYS if f"{name}.{k}" in overrides
        }
        dim, plane, neighbours = rules.SHAPES[name]
        configurations[name] = _configuration(
            name, fp, budget, spacing, num_classes, label_values, common, fixed, dim=dim,
            plane=plane, neighbours=neighbours,
        )  # fmt: skip
    if fp.ndim == 3:
        stages, reason = _cascade(
            fp, budget, configurations["3d"], num_classes, label_values, common, overrides,
            asked=bool(asked),
        )  # fmt: skip
        if cascade is False:
            stages, reason = {}, "no cascade: not asked for (cascade=False)"
        full = configurations["3d"]
        configurations["3d"] = replace(full, reasons=(*full.reasons, reason))
        configurations.update(stages)
    plan = Plan(
        dataset_name=fp.dataset_name,
        channel_names=dict(fp.channel_names),
        labels=dict(spec.labels),
        regions=dict(spec.regions),
        region_order=tuple(spec.region_order),
        ignore_label=spec.ignore,
        every_object_marked=dict(fp.every_object_marked),
        num_classes=num_classes,
        normalization=norm,
        transpose=order,
        configurations=configurations,
        default_configuration=names[0],
        budget=budget.as_dict(),
        ensembles={"multiplane": rules.PLANAR_SET} if fp.ndim == 3 else {},
    )
    return apply_overrides(plan, overrides)


def _cascade(
    fp: Fingerprint,
    budget: PlanBudget,
    full: Configuration,
    num_classes: int,
    label_values: tuple[int, ...],
    common: list[str],
    overrides: dict[str, Any],
    *,
    asked: bool,
) -> tuple[dict[str, Configuration], str]:
    """``3d_lowres`` + ``3d_cascade_fullres`` by :func:`plan_cascade`, with the reason."""
    fixed = {
        k: overrides.pop(f"{LOWRES}.{k}") for k in PLANNED_KEYS if f"{LOWRES}.{k}" in overrides
    }
    keep = {k: v for k, v in fixed.items() if k != "spacing"}

    def lowres_at(spacing: tuple[float, ...]) -> Configuration:
        return _configuration(
            LOWRES, fp, budget, spacing, num_classes, label_values, common, keep, dim=3,
            plane=0, neighbours=0,
        )  # fmt: skip

    return plan_cascade(
        full,
        _median_shape(fp, full.spacing, [0, 1, 2]),
        lowres_at,
        force=asked,
        spacing=fixed.get("spacing"),
    )


def _transposed(fp: Fingerprint, order: tuple[int, ...]) -> Fingerprint:
    """``fp`` with per-case spacings and shapes rearranged into ``order``."""

    def permute(rows: tuple[tuple, ...]) -> tuple[tuple, ...]:
        return tuple(tuple(row[a] for a in order) for row in rows)

    return replace(
        fp,
        spacings=permute(fp.spacings),
        shapes=permute(fp.shapes),
        shapes_after_crop=permute(fp.shapes_after_crop),
    )


def _median_shape(
    fp: Fingerprint, spacing: tuple[float, ...], axes: list[int]
) -> tuple[float, ...]:
    """Median image shape (voxels) along ``axes`` after resampling them to ``spacing``."""
    in_spacing = np.asarray(fp.spacings, float)[:, axes]
    shapes = np.asarray(fp.shapes_after_crop, float)[:, axes]
    return tuple(float(v) for v in np.median(shapes * in_spacing / np.asarray(spacing), axis=0))


def _configuration(
    name: str,
    fp: Fingerprint,
    budget: PlanBudget,
    full_spacing: tuple[float, ...],
    num_classes: int,
    label_values: tuple[int, ...],
    common: list[str],
    fixed: dict[str, Any],
    *,
    dim: int,
    plane: int,
    neighbours: int,
) -> Configuration:
    axes = [a for a in range(3) if a != plane] if dim < fp.ndim else list(range(fp.ndim))
    spacing = tuple(float(s) for s in fixed.get("spacing", [full_spacing[a] for a in axes]))
    reasons = list(common)
    if dim == 2 and fp.ndim == 3:
        reasons.append(rules.planar_reason(name, spacing, plane, neighbours))
    if "spacing" in fixed:
        reasons.append(f"spacing {_fmt(spacing)} mm set by override")
    median_shape = _median_shape(fp, spacing, axes)
    max_features = budget.max_features_3d if dim == 3 else budget.max_features_2d
    reference, ref_reason = _reference(budget, dim, num_classes)
    reasons.append(ref_reason)

    def estimate(topo: Topology) -> int:
        filters = stage_filters(len(topo.strides), budget.base_features, max_features)
        return feature_map_size(topo.patch_size, filters, topo.strides, num_classes)

    if "patch_size" in fixed:
        topo = pool_and_conv_props(spacing, tuple(int(p) for p in fixed["patch_size"]))
        reasons.append(f"patch {list(topo.patch_size)} set by override (padded to the strides)")
    else:
        topo = _fit_patch(spacing, median_shape, reference, estimate)
        reasons.append(
            f"patch {list(topo.patch_size)}: proportional to 1/spacing, clipped to the median "
            f"resampled shape {[round(m) for m in median_shape]}, shrunk along the axis with the "
            f"largest patch/shape ratio until the feature-map estimate "
            f"({estimate(topo) / 1e6:.1f}M) fits the budget ({reference / 1e6:.1f}M) and, after "
            "padding to the strides, no axis exceeds the median shape"
        )
    est = estimate(topo)
    if "batch_size" in fixed:
        batch = int(fixed["batch_size"])
        reasons.append(f"batch size {batch} set by override")
    else:
        volume_shape = np.median(np.asarray(fp.shapes_after_crop, float), axis=0)
        volume_shape[axes] = median_shape
        batch, batch_reason = _batch_size(reference, est, dim, volume_shape, topo, len(fp.shapes))
        reasons.append(batch_reason)
    filters = stage_filters(len(topo.strides), budget.base_features, max_features)
    reasons.append(
        f"network: {len(filters)} stages with {'-'.join(map(str, filters))} features, "
        f"pooling {list(topo.pools_per_axis)} times per axis (stops at feature maps of 4 voxels "
        "and on axes coarser than 2x the finest); kernel 1 on axes still coarser than 2x; "
        + _deep_supervision_reason(budget, len(filters))
    )
    sep_axis = None
    if dim == 3:
        sep_axis, sep_reason = rules.separate_axis(fp.median_spacing, spacing)
        reasons.append(sep_reason)
    training, train_reasons = _training(budget, dim, fp, label_values, num_classes, est, batch)
    reasons += train_reasons
    return Configuration(
        name=name,
        spacing=spacing,
        patch_size=topo.patch_size,
        batch_size=batch,
        separate_axis=sep_axis,
        network=NetworkConfig(
            filters=filters,
            kernel_sizes=topo.kernel_sizes,
            strides=topo.strides,
            deep_supervision=_deep_supervision(budget, len(filters)),
            deep_supervision_heads=max(0, len(filters) - 2),
        ),
        training=training,
        reasons=tuple(reasons),
        plane=plane,
        neighbours=neighbours,
    )


def _deep_supervision(budget: PlanBudget, num_stages: int) -> bool:
    """Deep supervision on GPU plans (nnU-Net), off on time-budgeted CPU plans.

    Measured on the budget benchmark's brains (docs/train.md): 600 s on one core, deep supervision
    off raised held-out grey/white matter Dice by about 0.02 at the same number of iterations.
    """
    return num_stages > 2 and budget.device == "cuda"


def _deep_supervision_reason(budget: PlanBudget, num_stages: int) -> str:
    if _deep_supervision(budget, num_stages):
        return (
            f"{num_stages - 2} deep-supervision heads (every decoder level but the lowest, "
            "as nnU-Net)"
        )
    if num_stages <= 2:
        return "no deep supervision (no decoder level below the output)"
    return (
        "no deep supervision: on a CPU time budget the full-resolution output alone learned "
        "faster (held-out Dice +0.02 in 600 s, docs/train.md)"
    )


def _reference(budget: PlanBudget, dim: int, num_classes: int) -> tuple[float, str]:
    """Feature-map budget for one sample: nnU-Net's 8 GB reference scaled to the budget."""
    memory = REFERENCE[dim] * budget.memory_gb / REFERENCE_GB
    if budget.device == "cuda":
        return memory, f"budget: {budget.memory_gb:g} GB of GPU memory (nnU-Net memory model)"
    anchor = _cpu_anchor(budget, num_classes)
    per_iteration = budget.time_budget_s / budget.target_iterations
    wanted = per_iteration / budget.reference_iteration_s * budget.cpu_cores / 2
    scale = max(wanted, budget.min_time_scale)
    floor = f" (raised from {wanted:.2f}x: fewer iterations rather than tiny patches)"
    time_ref = anchor * scale * REFERENCE[dim] / REFERENCE[3]
    return min(time_ref, memory), (
        f"budget: {budget.time_budget_s:g} s of training on {budget.cpu_cores} CPU cores for "
        f"about {budget.target_iterations} iterations; the reference network "
        f"({budget.base_features}-feature base, patch 64^3, batch 2) takes "
        f"{budget.reference_iteration_s:g} s per iteration, so one iteration may do "
        f"{scale:.2f}x its work{floor if wanted < scale else ''}"
    )


def _cpu_anchor(budget: PlanBudget, num_classes: int) -> float:
    topo = pool_and_conv_props((1.0, 1.0, 1.0), CPU_REFERENCE_PATCH)
    filters = stage_filters(len(topo.strides), budget.base_features, budget.max_features_3d)
    return float(feature_map_size(topo.patch_size, filters, topo.strides, num_classes))


def _fit_patch(
    spacing: tuple[float, ...],
    median_shape: tuple[float, ...],
    reference: float,
    estimate: Callable[[Topology], int],
) -> Topology:
    dim = len(spacing)
    inv = 1.0 / np.asarray(spacing)
    edge = INITIAL_PATCH_EDGE[dim]
    initial = [round(v) for v in inv * (edge**dim / np.prod(inv)) ** (1 / dim)]
    initial = tuple(int(min(p, m)) for p, m in zip(initial, np.round(median_shape), strict=True))
    topo = pool_and_conv_props(spacing, initial)
    while estimate(topo) > reference or any(
        p > m for p, m in zip(topo.patch_size, median_shape, strict=True)
    ):
        axis = shrink_axis(topo.patch_size, median_shape)
        trial = list(topo.patch_size)
        trial[axis] -= topo.divisor[axis]
        step = pool_and_conv_props(spacing, tuple(trial)).divisor[axis]
        patch = list(topo.patch_size)
        patch[axis] -= step
        if patch[axis] < 1:
            break
        topo = pool_and_conv_props(spacing, tuple(patch))
    return topo


def _batch_size(
    reference: float,
    est: int,
    dim: int,
    median_shape: npt.NDArray[np.float64],
    topo: Topology,
    num_cases: int,
) -> tuple[int, str]:
    by_budget = round(reference / est * REFERENCE_BATCH[dim])
    dataset_voxels = float(np.prod(median_shape)) * num_cases
    by_dataset = round(dataset_voxels * MAX_DATASET_COVERED / math.prod(topo.patch_size))
    batch = max(min(by_budget, by_dataset), MIN_BATCH)
    return batch, (
        f"batch size {batch}: {by_budget} fit the budget, {by_dataset} would cover 5% of the "
        f"dataset's voxels, minimum {MIN_BATCH}"
    )


def _training(
    budget: PlanBudget,
    dim: int,
    fp: Fingerprint,
    label_values: tuple[int, ...],
    num_classes: int,
    est: int,
    batch: int,
) -> tuple[TrainingConfig, list[str]]:
    reasons = []
    timed: dict[str, Any] = {}
    if budget.device == "cuda":
        epochs, per_epoch, val = 1000, 250, 50
        reasons.append("schedule: nnU-Net's 1000 epochs x 250 iterations (GPU)")
    else:
        anchor = _cpu_anchor(budget, num_classes)
        seconds = budget.reference_iteration_s * (est * batch) / (anchor * 2) * 2 / budget.cpu_cores
        per_epoch, val = 50, 10
        epochs = max(1, int(budget.time_budget_s // (seconds * per_epoch)))
        timed = {
            "time_budget_s": float(budget.time_budget_s),
            "warmup_fraction": CPU_WARMUP_FRACTION,
            "case_validations": CPU_CASE_VALIDATIONS,
            "batch_dice": True,
            "augment": False,
            **CPU_OPTIMIZER,
        }
        reasons.append(
            f"schedule: trains for the {budget.time_budget_s:g} s budget itself, not a count of "
            f"epochs (about {seconds:.2f} s per iteration estimated, so about "
            f"{epochs * per_epoch} iterations); warm-up over the first "
            f"{CPU_WARMUP_FRACTION:.0%}, then poly decay over elapsed / budget, so the learning "
            "rate reaches 0 when the time is spent on any CPU and under any load"
        )
        reasons.append(
            f"validation: {CPU_CASE_VALIDATIONS} sliding-window predictions of whole validation "
            "cases (at most 4) in the second half of the run, the last at its end, instead of "
            "patch validation every epoch (which cost ~10% of a CPU budget); intermediate ones "
            "are skipped once validation would take more than 10% of the budget (slow or "
            "loaded CPU); the weights of the best one are kept"
        )
        reasons.append(
            f"optimizer: AdamW, learning rate {CPU_OPTIMIZER['learning_rate']:g}, weight decay "
            f"{CPU_OPTIMIZER['weight_decay']:g}, instead of nnU-Net's SGD (momentum 0.99, 0.01), "
            "made for 250,000 GPU iterations: in 600 s on one CPU thread (about 950 "
            "iterations) AdamW reached held-out Dice +0.017 / +0.012 on grey / white matter and "
            "found small lesions that SGD never did (lesion F1 0.27 against 0; docs/train.md)"
        )
        reasons.append(
            "loss: Dice over the whole batch, so a patch without a small class does not score "
            "a perfect Dice of 0 for it and a rare class's few voxels add up over the batch"
        )
        reasons.append(
            "no data augmentation: a CPU budget sees about a thousand batches, too few to "
            "overfit, and without it the network learned faster (held-out Dice +0.015, "
            "+0.036 with deep supervision also off, in 600 s; docs/train.md); turn it on "
            "with training.augment=true and training.mirror_axes=[0, 1, 2] for long runs; no "
            "mirroring in training means none at prediction either (a network never shown "
            "flipped images is not averaged over them, and prediction is 8x cheaper)"
        )
    weights: tuple[float, ...] | None = None
    centred: tuple[int, ...] = ()
    oversample = 0.33
    if label_values:
        weights, centred, oversample, reason = rules.rare_class_weights(fp, label_values)
        reasons.append(reason)
    extra_losses, sparse_reason = rules.sparse_regulariser(fp, patch_dims=dim)
    if sparse_reason is not None:
        reasons.append(sparse_reason)
    training = TrainingConfig(
        epochs=epochs,
        iterations_per_epoch=per_epoch,
        val_iterations=val,
        class_weights=weights,
        oversample_foreground=oversample,
        oversample_labels=centred,
        loss="dice_ce" if label_values else "dice_bce",
        extra_losses=extra_losses,
        mirror_axes=() if timed else tuple(range(dim)),
        **timed,
    )
    return training, reasons


def _label_reason(spec: LabelSpec, num_classes: int) -> str:
    if spec.regions:
        return (
            f"{num_classes} region outputs (sigmoid, Dice + BCE), painted back in the order "
            f"{list(spec.region_order)}"
        )
    ignore = (
        f"; label {spec.ignore} is ignored by losses and metrics" if spec.ignore is not None else ""
    )
    return f"{num_classes} softmax outputs (Dice + CE){ignore}"


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
