"""The training plan: a readable, editable ``plan.json`` made from a dataset fingerprint.

All spatial tuples are in array axis order (z, y, x) for 3D and (y, x) for 2D configurations;
spacings are in mm. ``reasons`` records, in plain words, why each rule chose what it chose.
Every field can be edited in the JSON or overridden from the CLI; loading validates keys and types.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from medseg import __version__
from medseg._config import write_json

NormScheme = Literal["ct", "zscore", "none", "rescale_0_1", "rgb_0_1"]
LossName = Literal["dice_ce", "dice_bce", "ce", "topk_ce", "dice", "focal", "tversky", "box_prior"]


@dataclass(frozen=True, kw_only=True)
class ChannelNormalization:
    """How one input channel is normalised.

    ``ct``: clip to [clip_low, clip_high] (the dataset's foreground 0.5/99.5 percentiles), then
    subtract ``mean`` and divide by ``std`` (foreground statistics). ``zscore``: per image, inside
    the nonzero mask when ``use_mask`` is set. ``rescale_0_1``: per image to [0, 1].
    ``rgb_0_1``: divide by 255. ``none``: unchanged.
    """

    scheme: NormScheme
    clip_low: float | None = None
    clip_high: float | None = None
    mean: float | None = None
    std: float | None = None
    use_mask: bool = False


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """A U-Net built from the plan (see :mod:`medseg.train.networks`).

    ``filters`` has one entry per resolution stage; ``kernel_sizes`` and ``strides`` one tuple per
    stage (the first stride is all ones). ``architecture`` names a registered network.
    ``size`` is a preset of that network (``null``: as planned): ``S``/``B``/``L`` scale the
    filters of the plan-built families by 0.5/1/2 and pick ViT-S/B/L for ``unetr``;
    ``M``/``L``/``XL`` are nnU-Net's residual-encoder presets for ``resenc_unet``
    (docs/methods.md).
    """

    architecture: str = "dynunet"
    filters: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    residual: bool = False
    deep_supervision: bool = True
    deep_supervision_heads: int = 2
    gradient_checkpointing: bool = False
    size: Literal["S", "B", "M", "L", "XL"] | None = None


@dataclass(frozen=True, kw_only=True)
class LesionSynthesisConfig:
    """Synthetic lesions pasted into training patches (see :mod:`medseg.train.lesion_synthesis`).

    Each training patch gets, with ``probability`` (0: off, the default), 1 to ``max_lesions``
    lesions of label ``lesion_label`` inside voxels of the ``host_labels`` tissue. ``None`` /
    empty means learned from the fold's training cases: the lesion label is the plan's single
    rare class (``oversample_labels``), the host labels those that surround the training lesions.
    """

    probability: float = 0.0
    max_lesions: int = 3
    lesion_label: int | None = None
    host_labels: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ClassificationConfig:
    """A case-level classification head on the encoder (see :mod:`medseg.train.case_head`).

    ``target`` (None: off) is the case-table column to predict; ``metadata`` the columns fed to the
    head beside the image features (``name``, ``name:num`` or ``name:cat``); ``weight`` the weight
    of its cross-entropy term added to the segmentation loss; ``hidden`` the width of its MLP;
    ``dropout`` the dropout probability on the MLP's input and hidden layer during training.
    """

    target: str | None = None
    metadata: tuple[str, ...] = ()
    weight: float = 0.5
    hidden: int = 32
    dropout: float = 0.0


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Optimisation and sampling settings. Epochs live here so a run is reproducible from the plan.

    ``oversample_foreground`` is the fraction of patches centred on a foreground voxel. With
    ``oversample_labels`` empty the centre's label is drawn uniformly among the labels present
    (nnU-Net); otherwise the centre is a voxel of one of these label values (rare classes such as
    lesions). ``class_weights`` (one per network output, background first) weight the CE term.

    Time-budgeted training (CPU plans): with ``time_budget_s`` set, a fold trains for that many
    seconds of wall time (validation included) instead of ``epochs`` x ``iterations_per_epoch``;
    the learning rate follows the schedule over elapsed / budget, after a linear warm-up over
    ``warmup_fraction`` of it. ``case_validations`` > 0 replaces the per-epoch patch validation by
    that many sliding-window validations of whole cases (at most ``max_val_cases`` of them) in
    the second half of the run, the last at its end; the weights of the best one are kept.
    ``batch_dice`` computes the Dice term over the batch (``None``: only for ``2d``).
    ``optimizer`` is ``sgd`` (Nesterov, ``momentum``) or ``adamw`` (betas 0.9/0.999).
    ``loss`` is the main loss (``dice_ce`` and ``dice_bce``: Dice + CE, or + BCE with regions);
    ``extra_losses`` adds weighted terms, e.g. ``{"cldice": 0.5, "nacl": 0.1}`` (docs/methods.md).
    ``semi_supervised`` ``mean_teacher`` also trains from the dataset's unlabelled images: a
    teacher network, the EMA (decay ``teacher_ema``) of the one trained, and a consistency term of
    weight ``consistency_weight`` (see ``medseg.train.semi``). ``rater_sampling`` trains cases
    with several raters' label maps on one rater's map per patch, drawn uniformly;
    ``rater_soft_targets`` trains them on the raters' vote fractions per voxel instead (soft
    Dice + CE, see ``medseg.train.soft_targets``).
    ``lesion_synthesis`` pastes synthetic lesions into patches (off unless its probability > 0).
    ``encoder_lr_scale`` multiplies the encoder's learning rate (below 1 when fine-tuning from
    pretrained weights, ``medseg train --init``). ``classification`` adds a case-level
    classification head trained jointly (off unless its ``target`` is set).
    ``weight_ema`` > 0 (time-budgeted runs only) validates and keeps an exponential moving
    average of the weights, decay ``weight_ema`` per iteration, instead of the weights themselves
    (``medseg.train.timed.weight_average``).
    """

    epochs: int = 50
    iterations_per_epoch: int = 50
    val_iterations: int = 10
    learning_rate: float = 1e-2
    momentum: float = 0.99
    weight_decay: float = 3e-5
    grad_clip: float = 12.0
    oversample_foreground: float = 0.33
    oversample_labels: tuple[int, ...] = ()
    class_weights: tuple[float, ...] | None = None
    loss: LossName = "dice_ce"
    extra_losses: dict[str, float] = field(default_factory=dict)
    mirror_axes: tuple[int, ...] = ()
    augment: bool = True
    mixed_precision: Literal["auto", "off", "bf16"] = "auto"
    time_budget_s: float | None = None
    warmup_fraction: float = 0.0
    case_validations: int = 0
    max_val_cases: int = 4
    batch_dice: bool | None = None
    optimizer: Literal["sgd", "adamw"] = "sgd"
    semi_supervised: Literal["off", "mean_teacher"] = "off"
    consistency_weight: float = 0.1
    teacher_ema: float = 0.99
    rater_sampling: bool = False
    rater_soft_targets: bool = False
    lesion_synthesis: LesionSynthesisConfig = field(default_factory=LesionSynthesisConfig)
    encoder_lr_scale: float = 1.0
    classification: ClassificationConfig = field(default_factory=ClassificationConfig)
    weight_ema: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Configuration:
    """One trainable configuration (``3d``, ``2d``, ``2.5d`` or a plane of the three-plane set).

    ``spacing`` is the target spacing after resampling; ``patch_size`` the training window in
    voxels; ``separate_axis`` the strongly anisotropic axis resampled with low order, or ``None``.
    A configuration with a 2-value patch is planar: slices are cut along spatial axis ``plane``
    (0, 1 or 2 of the network grid, i.e. after ``Plan.transpose``), spacing and patch are the
    in-plane values of the two other axes in their order, and the slice axis is not resampled.
    ``neighbours`` k > 0 makes it 2.5D: the network sees the 2k + 1 slices around the one it
    segments, each input channel's slices stacked as channels (channel-major: channel c, offset
    j at input channel ``c * (2k + 1) + j``; slices past the volume ends repeat the end slice).
    ``previous_stage`` names the configuration whose segmentation this one takes as extra input
    channels, one per foreground label (``3d_cascade_fullres`` of the cascade, docs/methods.md).
    """

    name: str
    spacing: tuple[float, ...]
    patch_size: tuple[int, ...]
    batch_size: int
    separate_axis: int | None = None
    network: NetworkConfig
    training: TrainingConfig = field(default_factory=TrainingConfig)
    reasons: tuple[str, ...] = ()
    plane: int = 0
    neighbours: int = 0
    previous_stage: str | None = None


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Everything needed to preprocess, train and predict for one dataset.

    ``num_classes`` is the number of network outputs: label count (background included) for
    softmax training, or region count for region-based (sigmoid) training. ``transpose`` is the
    order in which the spatial axes of a 3D image are arranged for the network (nnU-Net puts the
    coarsest axis first, so 2D slices are cut across it); ``()`` keeps the image's order.
    Configuration spacings and patch sizes are in the transposed order. ``ensembles`` names sets
    of configurations trained as one model and averaged at prediction (``multiplane``: the
    2.5D configurations over the three planes; docs/methods.md).
    ``every_object_marked`` maps the label values of sparse classes whose every object carries
    a mark to the reach of those marks in mm (``dataset.json``, :mod:`medseg.data.marks`); the
    ``absence`` loss term reads it.
    """

    medseg_version: str = __version__
    dataset_name: str
    channel_names: dict[int, str]
    labels: dict[str, int]
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    region_order: tuple[int, ...] = ()
    ignore_label: int | None = None
    every_object_marked: dict[int, float] = field(default_factory=dict)
    num_classes: int
    normalization: tuple[ChannelNormalization, ...]
    crop_to_nonzero: bool = True
    transpose: tuple[int, ...] = ()
    configurations: dict[str, Configuration]
    default_configuration: str
    num_folds: int = 5
    seed: int = 12345
    budget: dict[str, float] = field(default_factory=dict)
    ensembles: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def configuration(self, name: str | None = None) -> Configuration:
        """The named configuration, or the default one."""
        from medseg.errors import ConfigError

        key = name or self.default_configuration
        if key not in self.configurations:
            raise ConfigError(
                f"plan has no configuration {key!r} (available: {sorted(self.configurations)})"
            )
        return self.configurations[key]

    def input_channels(self, name: str | None = None) -> int:
        """Network input channels of a configuration: image channels x (2 neighbours + 1), plus
        one per foreground label for a cascade stage (:func:`cascade_labels`)."""
        config = self.configuration(name)
        extra = len(cascade_labels(self)) if config.previous_stage else 0
        return len(self.channel_names) * (2 * config.neighbours + 1) + extra

    def with_configuration(self, config: Configuration) -> Plan:
        """A copy with ``config`` replacing the configuration of the same name."""
        return replace(self, configurations={**self.configurations, config.name: config})


def cascade_labels(plan: Plan) -> tuple[int, ...]:
    """Label values a cascade stage receives as one-hot input channels: the foreground labels.

    Background and the ignore label get no channel (nnU-Net's one-hot of the previous stage).
    """
    skip = {0, plan.ignore_label}
    return tuple(sorted(v for v in set(plan.labels.values()) if v not in skip))


def save_plan(plan: Plan, path: Path) -> None:
    """Write ``plan.json`` (indented, sorted keys) atomically."""
    write_json(plan, path)
