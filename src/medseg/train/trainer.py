"""Train one cross-validation fold: SGD + poly LR, Dice + CE, checkpoints, logs, resume.

nnU-Net's recipe (docs/train.md): SGD with Nesterov momentum, learning rate
``lr * (1 - epoch / epochs) ** 0.9`` set at the start of each epoch, gradient norm clipped at
``grad_clip``, deep-supervision Dice + CE. Mixed precision: bf16 (or fp16 with a gradient scaler)
autocast on CUDA; on a CPU only with ``mixed_precision="bf16"``, or ``"auto"`` on a CPU with
AVX-512 BF16/AMX (then with ``channels_last`` memory format). Iterations with a non-finite loss
are skipped; an epoch where every loss is non-finite stops training with an error.

Validation, every epoch, uses ``val_iterations`` fixed batches of patches from the fold's
validation cases (drawn once, same foreground oversampling, no augmentation): Dice per class is
computed from true/false positives summed over all of them (nnU-Net's pseudo-Dice; ``log.csv``,
``progress.png``). After the last epoch the whole validation cases are predicted with a sliding
window (:mod:`medseg.train.validation`); that Dice goes to ``val_metrics.json`` and the result.

On a CPU, a run is deterministic under a seed: weights come from ``torch.manual_seed(seed)``,
batch ``k`` from ``(seed, k)`` (see :mod:`medseg.train.loader`), and deterministic algorithms are
requested (on CUDA they are left as the caller set them, for speed). A checkpoint is written
after every epoch; ``resume=True`` continues from it and ends with the same weights as an
uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from medseg.data.case_table import CaseTable
from medseg.errors import ConfigError, MedsegError
from medseg.plan.plan import Configuration, Plan, TrainingConfig
from medseg.train import schedule
from medseg.train.augment import training_transform
from medseg.train.case_head import CaseClassifier, case_classifier
from medseg.train.case_validation import validate_classification
from medseg.train.checkpoint import load_checkpoint, remove_checkpoints, save_checkpoint
from medseg.train.finetune import (
    load_initial_weights,
    parameter_groups,
    set_learning_rate,
    write_init_report,
)
from medseg.train.lesion_synthesis import lesion_synthesis_transform
from medseg.train.loader import BatchStream, batch_iterator
from medseg.train.logs import plot_progress, write_log_csv
from medseg.train.losses import DeepSupervisionLoss, build_loss
from medseg.train.model_folder import fold_dir, save_fold
from medseg.train.networks import build_network, output_list
from medseg.train.sampling import CaseSource, PatchSampler
from medseg.train.semi import MeanTeacher
from medseg.train.timed import TimedRun, TimedState, train_for_time
from medseg.train.validation import (
    METHOD,
    VALIDATION_LABELS,
    mean_over_cases,
    patch_validation,
    save_validation_labels,
    validate_cases,
)

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
EpochCallback = Callable[[dict[str, Any]], None]
LossWrapper = Callable[[DeepSupervisionLoss, Configuration], nn.Module]
"""Hook that wraps the training loss (e.g. ``medseg.weak`` label correction). The wrapper is
called as ``wrapper(outputs, label, *extra)`` (``extra``: the batch's annotated-class mask, if
any) and must keep the wrapped loss's ``loss`` attribute
(the per-output loss that patch validation uses)."""


class ParallelHooks(Protocol):
    """What data-parallel training (``medseg.scale.ddp``) changes in :func:`train_fold`.

    ``is_writer``: this process writes logs, checkpoints and weights (rank 0). ``wrap(net)``:
    the module that runs forward/backward (e.g. DistributedDataParallel). ``split(stream)``:
    this rank's share of the batch stream. ``mean(value)``: a float averaged over ranks.
    ``finish()``: wait until the writer has saved the fold.
    """

    is_writer: bool

    def wrap(self, net: nn.Module) -> nn.Module: ...

    def split(self, stream: BatchStream) -> BatchStream: ...

    def mean(self, value: float) -> float: ...

    def finish(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class FoldResult:
    """Outcome of one trained fold.

    Attributes
    ----------
    fold : int
    path : Path
        The fold folder (``model.safetensors``, ``log.csv``, ``progress.png``, ...).
    epochs : int
    val_dice : dict of str to float
        Validation Dice per class (or region): sliding-window prediction of each validation
        case after the last epoch, averaged over cases (NaN where never scored).
    mean_dice : float
        NaN-ignoring mean of ``val_dice``.
    train_loss : float
        Mean training loss of the last epoch.
    """

    fold: int
    path: Path
    epochs: int
    val_dice: dict[str, float]
    mean_dice: float
    train_loss: float


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA if available, else CPU; anything else as given (validated)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but torch sees no CUDA device")
    return dev


def autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``TrainingConfig.mixed_precision`` on ``device`` (None = fp32)."""
    if setting == "off":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if setting == "bf16" or (setting == "auto" and _cpu_has_bf16()):
        return torch.bfloat16
    return None


def poly_lr(initial: float, epoch: int, epochs: int, exponent: float = 0.9) -> float:
    """nnU-Net's polynomial learning-rate decay for 0-based ``epoch`` of ``epochs``."""
    return schedule.poly_lr(initial, epoch / epochs, exponent)


def train_fold(
    source: CaseSource,
    plan: Plan,
    config_name: str,
    model_dir: Path,
    fold: int,
    *,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    device: str | torch.device = "auto",
    seed: int = 12345,
    num_workers: int = 0,
    resume: bool = True,
    final_validation: bool = True,
    on_progress: ProgressCallback | None = None,
    on_epoch: EpochCallback | None = None,
    parallel: ParallelHooks | None = None,
    wrap_loss: LossWrapper | None = None,
    annotated: Mapping[str, Sequence[int]] | None = None,
    unlabelled_ids: Sequence[str] = (),
    init: Path | str | None = None,
    case_table: CaseTable | None = None,
    labelled_ids: Sequence[str] = (),
) -> FoldResult:
    """Train one fold and write it into the model folder ``model_dir``.

    Parameters
    ----------
    source : CaseSource
        Preprocessed cases for ``config_name`` (a ``medseg.preprocess.CaseCache``).
    plan : Plan
    config_name : str
        Configuration to train (``"2d"`` or ``"3d"``).
    model_dir : Path
        Model folder created by :func:`~medseg.train.model_folder.save_model_folder`.
    fold : int
        Fold number (``ALL_FOLD`` for all cases); names the folder ``fold_<k>``.
    train_ids, val_ids : sequence of str
        Case ids to train and validate on.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    seed : int
        Seed of weights, sampling and augmentation.
    num_workers : int
        Worker processes producing augmented batches (0: main process).
    resume : bool
        Continue from the fold's last checkpoint if there is one.
    final_validation : bool
        Predict the whole validation cases with a sliding window after the last epoch; when
        False (e.g. for a model trained on all cases) the last epoch's patch Dice is reported.
    on_progress : callable, optional
        ``on_progress(iterations_done, iterations_total)`` after every training iteration.
    on_epoch : callable, optional
        Called with each epoch's log row (a dict) after it is written.
    parallel : ParallelHooks, optional
        Data-parallel training across processes (see ``medseg.scale.ddp``); only the writer
        saves files, every process returns the result. Processes cannot agree on when a wall-clock
        budget runs out, so a parallel run trains the plan's ``epochs`` even when the plan has a
        ``time_budget_s``.
    wrap_loss : callable, optional
        ``wrap_loss(loss, configuration)`` returns the module used as training loss instead of
        ``loss`` (see :data:`LossWrapper`).
    annotated : mapping of str to sequence of int, optional
        Annotated foreground classes of the partially labelled cases
        (:func:`medseg.data.partial.annotated_classes`). When given, batches carry an
        annotated-class mask, training uses the marginal loss (:mod:`medseg.train.marginal`) and
        validation scores each case only on the classes it annotates.
    unlabelled_ids : sequence of str
        Cached cases without labels, used when ``training.semi_supervised`` is
        ``"mean_teacher"`` (:mod:`medseg.train.semi`): every batch then adds ``batch_size``
        unlabelled patches after the labelled ones.
    init : path, optional
        Pretrained weights to start from (:func:`medseg.train.finetune.load_initial_weights`:
        a model folder, a fold folder or a ``.safetensors`` file); tensors whose names and
        shapes match are loaded, ``init_report.json`` in the fold folder lists them. A resumed
        run continues from its checkpoint instead.
    case_table : CaseTable, optional
        Per-case fields, needed when ``training.classification.target`` is set: a
        classification head (:mod:`medseg.train.case_head`) is then trained with the network.
    labelled_ids : sequence of str
        Every labelled case (the head's classes are those of all of them); default the fold's.

    Returns
    -------
    FoldResult
    """
    config = plan.configuration(config_name)
    tc = config.training
    dev = resolve_device(device)
    ndim = len(config.patch_size)
    dtype = autocast_dtype(tc.mixed_precision, dev)
    memory_format = _memory_format(ndim) if dtype is not None and dev.type == "cpu" else None
    path = fold_dir(model_dir, fold)
    writer = parallel is None or parallel.is_writer
    path.mkdir(parents=True, exist_ok=True)

    previous_determinism = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(dev.type == "cpu" or previous_determinism, warn_only=True)
    try:
        torch.manual_seed(seed)
        net = build_network(
            config.network,
            plan.input_channels(config_name),
            plan.num_classes,
            ndim,
            patch_size=config.patch_size,
        )
        net = net.to(dev) if memory_format is None else net.to(dev, memory_format=memory_format)
        if init is not None:
            report = load_initial_weights(net, init)
            if writer:
                write_init_report(report, path)
        classifier = case_classifier(
            net,
            tc.classification,
            case_table,
            train_ids,
            list(labelled_ids) or [*train_ids, *val_ids],
            parallel=parallel is not None,
        )
        optimizer = build_optimizer(net, tc)
        semi = _semi_supervised_ids(tc, unlabelled_ids, parallel)
        partial = annotated is not None or bool(semi)
        soft = tc.rater_soft_targets
        loss_fn = _checked_loss(plan, config, partial=partial, soft=soft).to(dev)
        if wrap_loss is not None:
            loss_fn = wrap_loss(loss_fn, config).to(dev)
        timed = tc.time_budget_s is not None and parallel is None
        rows: list[dict[str, Any]] = []
        start = 0
        state = load_checkpoint(path, net, optimizer) if resume else None
        if not resume:
            remove_checkpoints(path)
        if state is not None:
            made_for = (state.get("epochs"), state.get("time_budget_s"), state.get("seed"))
            if made_for != (tc.epochs, tc.time_budget_s, seed):
                raise ConfigError(
                    f"{path}: checkpoint was made for {state.get('epochs')} epochs, time budget "
                    f"{state.get('time_budget_s')} s, seed {state.get('seed')}; pass "
                    "resume=False to start over"
                )
            start, rows = int(state["epoch"]), list(state["rows"])
            logger.info("fold %s: resuming after epoch %d", fold, start)

        labels = plan.labels.values()
        foreground = [v for v in labels if v != 0 and v != plan.ignore_label]

        raters = _rater_labels(source, train_ids) if tc.rater_sampling or soft else None

        def sampler(
            ids: Sequence[str], unlabelled: Sequence[str] = (), raters: Mapping | None = None
        ) -> PatchSampler:
            return PatchSampler(
                source,
                ids,
                config.patch_size,
                config.batch_size,
                tc.oversample_foreground,
                foreground_labels=foreground,
                oversample_labels=tc.oversample_labels,
                annotated=dict(annotated or {}) if partial else None,
                num_classes=plan.num_classes,
                unlabelled_ids=unlabelled,
                unlabelled_per_batch=config.batch_size,
                raters=raters,
                soft_targets=soft and raters is not None,
                ignore_label=plan.ignore_label,
                plane=config.plane,
                neighbours=config.neighbours,
            )

        transform = training_transform(
            ndim,
            augment=tc.augment,
            mirror_axes=tc.mirror_axes,
            lesion_synthesis=lesion_synthesis_transform(source, train_ids, plan, config),
            previous_stage_from=len(plan.channel_names) if config.previous_stage else None,
        )
        done = int(state["iterations"]) if timed and state else start * tc.iterations_per_epoch
        stream = BatchStream(
            sampler(train_ids, semi, raters),
            transform,
            seed=seed,
            start=done,
            case_index=None if classifier is None else classifier.case_index,
        )
        stream = stream if parallel is None else parallel.split(stream)
        batches = batch_iterator(stream, num_workers)
        step_net = net if parallel is None else parallel.wrap(net)
        step = _Stepper(step_net, optimizer, loss_fn, dev, dtype, memory_format, tc.grad_clip, ndim)
        step.classifier = classifier
        if semi:
            step.teacher = MeanTeacher(
                net,
                weight=tc.consistency_weight,
                ema=tc.teacher_ema,
                total_steps=tc.epochs * tc.iterations_per_epoch,
                time_budget_s=tc.time_budget_s,
            )
        title = f"{plan.dataset_name} {path.name.replace('_', ' ')}"
        saved = {"epochs": tc.epochs, "time_budget_s": tc.time_budget_s, "seed": seed}
        predictions: dict[str, np.ndarray] = {}  # validation label maps, for post-processing
        if timed:
            run = TimedRun(
                net=net,
                optimizer=optimizer,
                step=step,
                batches=batches,
                plan=plan,
                config_name=config_name,
                source=source,
                val_ids=val_ids,
                device=dev,
                dtype=dtype,
                path=path,
                checkpoint_state=saved,
                title=title,
                annotated=annotated,
            )
            outcome = train_for_time(
                run,
                TimedState.from_dict(state or {}),
                on_progress=on_progress,
                on_epoch=on_epoch,
            )
            del batches
            rows = outcome.rows
            metrics = _timed_metrics(outcome, val_ids, tc.epochs)
            predictions = outcome.best_predictions
        else:
            val_stream = BatchStream(sampler(val_ids), None, seed=seed + 1)
            val_batches = [val_stream.batch(k) for k in range(tc.val_iterations)]
            rows = _train_epochs(
                net, optimizer, step, batches, val_batches, loss_fn, plan, tc, path,
                start=start, rows=rows, fold=fold, saved=saved, title=title,
                device=dev, dtype=dtype, memory_format=memory_format,
                on_progress=on_progress, on_epoch=on_epoch, parallel=parallel,
            )  # fmt: skip
            del batches
            patch_dice = {k[5:]: float(v) for k, v in rows[-1].items() if k.startswith("dice_")}
            metrics = {
                "dice": patch_dice,
                "method": "pseudo-Dice on validation patches",
                "patch_dice": patch_dice,
                "val_cases": list(val_ids),
                "epochs": tc.epochs,
            }
            if final_validation and writer:
                per_case = validate_cases(
                    net, source, val_ids, plan, config_name, device=dev, dtype=dtype,
                    annotated=annotated, predictions=predictions,
                )  # fmt: skip
                metrics.update(dice=mean_over_cases(per_case), method=METHOD, per_case=per_case)
        val_dice = metrics["dice"]
        metrics["mean_dice"] = _nanmean(val_dice.values())
        if classifier is not None:
            if final_validation and writer:
                metrics["classification"] = validate_classification(
                    net, classifier, source, val_ids, plan, config_name, device=dev, dtype=dtype
                )
            classifier.detach_from(net)
            if writer:
                classifier.save(path)
        if writer:
            save_fold(model_dir, fold, net, val_metrics=metrics)
            if predictions and annotated is None:  # partial references would mislead the choice
                save_validation_labels(path, predictions, source)
            else:  # a retrained fold must not leave an earlier training's maps behind
                (path / VALIDATION_LABELS).unlink(missing_ok=True)
            remove_checkpoints(path)
        if parallel is not None:
            parallel.finish()
    finally:
        torch.use_deterministic_algorithms(previous_determinism)
    finite_losses = [r["train_loss"] for r in rows if math.isfinite(float(r["train_loss"]))]
    return FoldResult(
        fold=fold,
        path=path,
        epochs=len(rows) if timed else tc.epochs,
        val_dice=val_dice,
        mean_dice=metrics["mean_dice"],
        train_loss=float(finite_losses[-1]) if finite_losses else math.nan,
    )


def build_optimizer(net: nn.Module, tc: TrainingConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (nnU-Net) or AdamW, as ``tc.optimizer`` says.

    The encoder's parameters form a group of their own when ``tc.encoder_lr_scale`` is not 1
    (see :func:`medseg.train.finetune.parameter_groups`).
    """
    groups = parameter_groups(net, tc)
    if tc.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=tc.learning_rate, weight_decay=tc.weight_decay)
    return torch.optim.SGD(
        groups,
        lr=tc.learning_rate,
        momentum=tc.momentum,
        weight_decay=tc.weight_decay,
        nesterov=True,
    )


def _train_epochs(
    net, optimizer, step, batches, val_batches, loss_fn, plan, tc, path, *,
    start, rows, fold, saved, title, device, dtype, memory_format, on_progress, on_epoch,
    parallel,
) -> list[dict[str, Any]]:  # fmt: skip
    """nnU-Net's epoch loop: poly LR per epoch, patch validation and a checkpoint every epoch.

    Under data-parallel training (``parallel``) the training loss is averaged over processes and
    only the writer process writes the log, the plot and the checkpoint.
    """
    writer = parallel is None or parallel.is_writer
    total = tc.epochs * tc.iterations_per_epoch
    done = start * tc.iterations_per_epoch
    for epoch in range(start, tc.epochs):
        tic = time.perf_counter()
        set_learning_rate(optimizer, poly_lr(tc.learning_rate, epoch, tc.epochs))
        net.train()
        losses = []
        for _ in range(tc.iterations_per_epoch):
            losses.append(step(*next(batches)))
            done += 1
            if on_progress is not None:
                on_progress(done, total)
        finite = [v for v in losses if math.isfinite(v)]
        if not finite:
            raise MedsegError(
                f"fold {fold}, epoch {epoch + 1}: every training loss was NaN/inf; lower "
                "training.learning_rate or set training.mixed_precision to 'off'"
            )
        val_loss, dice = patch_validation(
            net, loss_fn, val_batches, plan, device, dtype, memory_format
        )
        train_loss = float(np.mean(finite))
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss if parallel is None else parallel.mean(train_loss),
            "val_loss": val_loss,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_s": round(time.perf_counter() - tic, 3),
            **{f"dice_{name}": value for name, value in dice.items()},
            "mean_dice": _nanmean(dice.values()),
        }
        rows.append(row)
        if writer:
            write_log_csv(rows, path / "log.csv")
            plot_progress(rows, path / "progress.png", title=title)
            save_checkpoint(path, net, optimizer, {**saved, "epoch": epoch + 1, "rows": rows})
        if on_epoch is not None:
            on_epoch(row)
    return rows


def _timed_metrics(outcome: TimedState, val_ids: Sequence[str], epochs: int) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "dice": outcome.best_metrics.get("dice", {}),
        "method": METHOD,
        "per_case": outcome.best_metrics.get("per_case", {}),
        "val_cases": outcome.best_metrics.get("val_cases", list(val_ids)),
        "iterations": outcome.iterations,
        "train_seconds": round(outcome.elapsed_s, 2),
        "validations": outcome.validations,
        "validation_seconds": round(outcome.validation_s, 2),
        "selected_at_seconds": round(outcome.best_at_s, 2),
    }
    return metrics


class _Stepper:
    """One optimisation step: autocast forward, deep-supervision loss, clipped SGD step.

    With a ``teacher`` (:class:`~medseg.train.semi.MeanTeacher`) the loss adds its consistency
    term and the teacher follows the student after every step.
    """

    def __init__(self, net, optimizer, loss_fn, device, dtype, memory_format, clip, ndim) -> None:
        self.net, self.optimizer, self.loss_fn = net, optimizer, loss_fn
        self.device, self.dtype, self.memory_format = device, dtype, memory_format
        self.clip, self.ndim = clip, ndim
        self.teacher: MeanTeacher | None = None
        self.classifier: CaseClassifier | None = None
        use_scaler = device.type == "cuda" and dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    def __call__(self, image: torch.Tensor, label: torch.Tensor, *extra: torch.Tensor) -> float:
        image = _to(image, self.device, self.memory_format)
        label = label.to(self.device, non_blocking=True)
        extra = tuple(x.to(self.device, non_blocking=True) for x in extra)
        if self.classifier is not None:
            extra, case_index = extra[:-1], extra[-1]
        self.optimizer.zero_grad(set_to_none=True)
        with _autocast(self.device, self.dtype):
            outputs = output_list(self.net(image), self.ndim)
        loss = self.loss_fn(outputs, label, *extra)
        if self.classifier is not None:
            loss = loss + self.classifier.loss(case_index)
        if self.teacher is not None:
            with _autocast(self.device, self.dtype):
                loss = loss + self.teacher.consistency(outputs[0], image)
        if not torch.isfinite(loss):
            logger.warning("non-finite training loss %s; step skipped", loss.item())
            return float("nan")
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.net.parameters(), self.clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), self.clip)
            self.optimizer.step()
        if self.teacher is not None:
            self.teacher.update()
        return float(loss.item())


def _checked_loss(
    plan: Plan, config: Configuration, *, partial: bool = False, soft: bool = False
) -> DeepSupervisionLoss:
    weights = config.training.class_weights
    if weights is not None and len(weights) != plan.num_classes:
        raise ConfigError(
            f"training.class_weights has {len(weights)} values but the network has "
            f"{plan.num_classes} outputs; give one weight per output"
        )
    return build_loss(plan, config, partial=partial, soft=soft)


def _rater_labels(source: CaseSource, ids: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """Each training case's rater label maps (``source.rater_labels``, a ``CaseCache`` method)."""
    found = {case_id: source.rater_labels(case_id) for case_id in ids}  # type: ignore[attr-defined]
    if not any(found.values()):
        raise ConfigError(
            "training.rater_sampling / rater_soft_targets is on but no training case has rater "
            "label maps (labelsTr/<case>_rater<k> files; docs/weak.md)"
        )
    return found


def _semi_supervised_ids(
    tc: TrainingConfig, unlabelled_ids: Sequence[str], parallel: ParallelHooks | None
) -> list[str]:
    """The unlabelled cases a mean-teacher run trains on ([] when it is off)."""
    if tc.semi_supervised == "off":
        return []
    if not unlabelled_ids:
        raise ConfigError(
            "training.semi_supervised is 'mean_teacher' but there are no unlabelled cases; "
            "pass a folder of images without labels (medseg train --unlabelled DIR)"
        )
    if parallel is not None:
        raise ConfigError("semi-supervised training is not available with data-parallel training")
    return list(unlabelled_ids)


def _nanmean(values) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _memory_format(ndim: int) -> torch.memory_format:
    return torch.channels_last_3d if ndim == 3 else torch.channels_last


def _to(x: torch.Tensor, device: torch.device, memory_format: torch.memory_format | None):
    x = x.to(device, non_blocking=True)
    return x if memory_format is None else x.contiguous(memory_format=memory_format)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _cpu_has_bf16() -> bool:
    """True if the CPU advertises AVX-512 BF16 or AMX BF16 (Linux ``/proc/cpuinfo``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
