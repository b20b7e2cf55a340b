"""Reading ``plan.json`` (:func:`load_plan`) and the consistency checks beyond key and type.

``from_jsonable`` already rejects unknown keys and wrong types; these checks catch values that
parse but cannot work together (a patch the network cannot pool, a class weight too few).
"""

from __future__ import annotations

import math
from pathlib import Path

from medseg._config import from_jsonable, read_json
from medseg.errors import ConfigError
from medseg.plan.plan import Configuration, Plan, TrainingConfig, cascade_labels

EXTRA_LOSSES = (
    "ce",
    "topk_ce",
    "dice",
    "focal",
    "tversky",
    "cldice",
    "boundary",
    "connectivity",
    "nacl",
    "containment",
    "entropy",
    "box_prior",
    "absence",
)
"""Terms ``training.extra_losses`` may name (the registries of medseg.train.loss_terms and
medseg.train.weak_terms)."""
SOFTMAX_ONLY_LOSSES = ("topk_ce", "box_prior")
"""Main losses (``training.loss``) that need softmax training, not regions."""


def load_plan(path: Path) -> Plan:
    """Read and validate ``plan.json``; unknown keys, wrong types or inconsistent values
    (see :func:`validate_plan`) raise ``ConfigError``."""
    plan = from_jsonable(Plan, read_json(path), source=str(path))
    validate_plan(plan, source=str(path))
    return plan


def validate_plan(plan: Plan, *, source: str = "plan") -> None:
    """Raise :class:`ConfigError` naming ``source`` and the field if ``plan`` is inconsistent."""
    problems: list[str] = []
    if len(plan.normalization) != len(plan.channel_names):
        problems.append(
            f"normalization has {len(plan.normalization)} entries for "
            f"{len(plan.channel_names)} channels"
        )
    if plan.default_configuration not in plan.configurations:
        problems.append(
            f"default_configuration {plan.default_configuration!r} is not one of "
            f"{sorted(plan.configurations)}"
        )
    if plan.num_classes < 1:
        problems.append(f"num_classes must be >= 1, got {plan.num_classes}")
    if plan.transpose and sorted(plan.transpose) != list(range(len(plan.transpose))):
        problems.append(
            f"transpose must be a permutation like [0, 1, 2], got {list(plan.transpose)}"
        )
    if plan.num_folds < 1:
        problems.append(f"num_folds must be >= 1, got {plan.num_folds}")
    foreground = set(plan.labels.values()) - {0, plan.ignore_label}
    for value, reach in sorted(plan.every_object_marked.items()):
        if value not in foreground or not (math.isfinite(reach) and reach > 0):
            problems.append(
                f"every_object_marked.{value}: needs a foreground label value and a reach in "
                f"mm > 0, got {reach} (labels: {sorted(foreground)})"
            )
    for key, config in plan.configurations.items():
        if key != config.name:
            problems.append(f"configurations.{key}: name is {config.name!r}")
        problems += [f"configurations.{key}.{p}" for p in configuration_problems(config, plan)]
    for key, members in plan.ensembles.items():
        unknown = [m for m in members if m not in plan.configurations]
        if unknown or len(members) < 2:
            problems.append(
                f"ensembles.{key} needs at least 2 configurations of this plan, got "
                f"{list(members)} (configurations: {sorted(plan.configurations)})"
            )
        if key in plan.configurations:
            problems.append(f"ensembles.{key} has the name of a configuration")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))


def configuration_problems(config: Configuration, plan: Plan) -> list[str]:
    """What is inconsistent in one configuration of ``plan`` (empty when nothing)."""
    dims = len(config.patch_size)
    net, train = config.network, config.training
    problems = []
    if config.name in ("3d", "3d_lowres", "3d_cascade_fullres") and dims != 3:
        problems.append(f"patch_size needs 3 values, got {list(config.patch_size)}")
    if config.name == "2d" and dims != 2:
        problems.append(f"patch_size needs 2 values, got {list(config.patch_size)}")
    problems += _planar_problems(config, dims)
    if config.previous_stage is not None:
        previous = plan.configurations.get(config.previous_stage)
        if previous is None or previous.name == config.name or len(previous.patch_size) != 3:
            problems.append(
                f"previous_stage {config.previous_stage!r} must name another 3D configuration "
                f"of the plan ({sorted(plan.configurations)})"
            )
        elif dims != 3 or not cascade_labels(plan):
            problems.append("previous_stage needs a 3D patch and at least one foreground label")
    if len(config.spacing) != dims:
        problems.append(f"spacing needs {dims} values, got {list(config.spacing)}")
    if any(not math.isfinite(s) or s <= 0 for s in config.spacing):
        problems.append(f"spacing must be positive, got {list(config.spacing)}")
    if any(p < 1 for p in config.patch_size):
        problems.append(f"patch_size must be positive, got {list(config.patch_size)}")
    if config.batch_size < 1:
        problems.append(f"batch_size must be >= 1, got {config.batch_size}")
    if config.separate_axis is not None and not 0 <= config.separate_axis < 3:
        problems.append(f"separate_axis must be 0, 1, 2 or null, got {config.separate_axis}")
    stages = len(net.filters)
    if not (len(net.strides) == len(net.kernel_sizes) == stages) or stages < 1:
        problems.append(
            f"network: filters, strides and kernel_sizes need one entry per stage, got "
            f"{stages}, {len(net.strides)} and {len(net.kernel_sizes)}"
        )
    if any(len(t) != dims for t in (*net.strides, *net.kernel_sizes)):
        problems.append(f"network: every stride and kernel size needs {dims} values")
    else:
        divisor = [math.prod(s[d] for s in net.strides) for d in range(dims)]
        if any(p % d for p, d in zip(config.patch_size, divisor, strict=True)):
            problems.append(
                f"patch_size {list(config.patch_size)} is not divisible by {divisor} (the "
                "product of the network strides); change the patch or the strides"
            )
    if train.class_weights is not None and len(train.class_weights) != plan.num_classes:
        problems.append(
            f"training.class_weights needs {plan.num_classes} values (one per output), got "
            f"{len(train.class_weights)}"
        )
    if not 0.0 <= train.oversample_foreground <= 1.0:
        problems.append(
            f"training.oversample_foreground must be in [0, 1], got {train.oversample_foreground}"
        )
    if train.epochs < 1 or train.iterations_per_epoch < 1:
        problems.append("training.epochs and training.iterations_per_epoch must be >= 1")
    if train.time_budget_s is not None and train.time_budget_s <= 0:
        problems.append(f"training.time_budget_s must be > 0 or null, got {train.time_budget_s}")
    if not 0.0 <= train.warmup_fraction < 1.0:
        problems.append(f"training.warmup_fraction must be in [0, 1), got {train.warmup_fraction}")
    if train.case_validations < 0 or train.max_val_cases < 1:
        problems.append("training.case_validations must be >= 0 and max_val_cases >= 1")
    if train.learning_rate <= 0:
        problems.append(f"training.learning_rate must be > 0, got {train.learning_rate}")
    if not 0.0 <= train.weight_ema < 1.0:
        problems.append(f"training.weight_ema must be in [0, 1), got {train.weight_ema}")
    elif train.weight_ema and train.time_budget_s is None:
        problems.append(
            "training.weight_ema needs a time-budgeted run (training.time_budget_s): only that "
            "loop validates whole cases and keeps the best, so only there is the average chosen"
        )
    synthesis = train.lesion_synthesis
    if not 0.0 <= synthesis.probability <= 1.0 or synthesis.max_lesions < 1:
        problems.append(
            "training.lesion_synthesis needs probability in [0, 1] and max_lesions >= 1, got "
            f"{synthesis.probability} and {synthesis.max_lesions}"
        )
    if not train.encoder_lr_scale > 0:
        problems.append(f"training.encoder_lr_scale must be > 0, got {train.encoder_lr_scale}")
    if train.loss in SOFTMAX_ONLY_LOSSES and plan.regions:
        problems.append(
            f"training.loss {train.loss} needs softmax training; this plan trains regions: use "
            "dice_bce"
        )
    if "absence" in train.extra_losses and dims == 2 and "3d" in plan.configurations:
        problems.append(
            "training.extra_losses.absence needs 3D patches on 3D images: a slice cannot see "
            "the marks on its neighbours"
        )
    problems += _soft_target_problems(train, plan)
    problems += _classification_problems(config)
    return problems + _loss_problems(train.extra_losses, plan)


def _soft_target_problems(train: TrainingConfig, plan: Plan) -> list[str]:
    if not train.rater_soft_targets:
        return []
    problems = []
    if train.rater_sampling:
        problems.append(
            "training.rater_soft_targets and training.rater_sampling exclude each other: "
            "train on the raters' vote fractions or on one rater per patch"
        )
    if plan.regions:
        problems.append("training.rater_soft_targets needs softmax training, not regions")
    if train.loss != "dice_ce" or train.extra_losses:
        problems.append(
            "training.rater_soft_targets trains with soft Dice + CE: set training.loss to "
            "dice_ce and remove training.extra_losses"
        )
    if train.lesion_synthesis.probability > 0:
        problems.append(
            "training.rater_soft_targets does not combine with training.lesion_synthesis "
            "(pasted lesions would need soft targets too)"
        )
    return problems


def _planar_problems(config: Configuration, dims: int) -> list[str]:
    """Plane and neighbours: only planar (2-value patch) configurations slice the volume."""
    problems = []
    if not 0 <= config.plane <= 2:
        problems.append(
            f"plane must be 0, 1 or 2 (the axis slices are cut along), got {config.plane}"
        )
    elif config.plane and dims != 2:
        problems.append(
            f"plane {config.plane} needs a 2D patch (2 values); 3D patches do not slice"
        )
    if config.neighbours < 0:
        problems.append(
            f"neighbours must be >= 0 (slices on each side of the centre slice), got "
            f"{config.neighbours}"
        )
    elif config.neighbours and dims != 2:
        problems.append("neighbours needs a 2D patch (2 values): a 3D patch already sees them")
    if config.neighbours > 0 and config.training.lesion_synthesis.probability > 0:
        problems.append(
            "training.lesion_synthesis works on single slices or 3D patches, not with "
            "neighbours > 0; set neighbours to 0 or the synthesis probability to 0"
        )
    return problems


def _loss_problems(extra_losses: dict[str, float], plan: Plan) -> list[str]:
    problems = []
    for name, weight in sorted(extra_losses.items()):
        if name not in EXTRA_LOSSES:
            known = ", ".join(EXTRA_LOSSES)
            problems.append(f"training.extra_losses: unknown loss {name!r} (known: {known})")
        if not math.isfinite(weight) or weight <= 0:
            problems.append(f"training.extra_losses.{name}: weight must be > 0, got {weight}")
    if "entropy" in extra_losses and plan.ignore_label is None:
        problems.append(
            "training.extra_losses.entropy acts on voxels with the ignore label; this dataset "
            'has none (add "ignore" to the labels of dataset.json)'
        )
    if "absence" in extra_losses and (plan.ignore_label is None or not plan.every_object_marked):
        problems.append(
            "training.extra_losses.absence needs sparse labels that mark every object of a "
            "class: an ignore label and every_object_marked in dataset.json (docs/weak.md)"
        )
    for name in ("nacl", "topk_ce", "box_prior", "absence"):
        if name in extra_losses and plan.regions:
            problems.append(
                f"training.extra_losses.{name} needs softmax training; this plan trains "
                "regions (sigmoids): use containment, or drop the regions"
            )
    if "containment" in extra_losses:
        sets = [set(labels) for labels in plan.regions.values()]
        if not any(a < b for a in sets for b in sets):
            problems.append(
                "training.extra_losses.containment needs regions nested in others "
                '(e.g. regions {"whole": [1, 2], "core": [2]})'
            )
    return problems


CLASSIFYING_NETWORKS = ("dynunet", "resenc_unet", "hybrid_unet")
"""Architectures with the ``bottleneck`` stage the case-level classification head reads."""


def _classification_problems(config: Configuration) -> list[str]:
    head = config.training.classification
    if head.target is None:
        return []
    problems = []
    if not (math.isfinite(head.weight) and head.weight > 0) or head.hidden < 1:
        problems.append(
            "training.classification needs weight > 0 and hidden >= 1, got "
            f"{head.weight} and {head.hidden}"
        )
    if not 0.0 <= head.dropout < 1.0:
        problems.append(f"training.classification.dropout must be in [0, 1), got {head.dropout}")
    if config.network.architecture not in CLASSIFYING_NETWORKS:
        problems.append(
            f"training.classification needs a network with a bottleneck stage "
            f"({', '.join(CLASSIFYING_NETWORKS)}), not {config.network.architecture!r}"
        )
    names = [spec.partition(":")[0] for spec in head.metadata]
    if head.target in names:
        problems.append(
            f"training.classification: the target {head.target!r} cannot also be metadata"
        )
    return problems
