"""``train_model``: dataset -> plan -> preprocessed cache -> trained folds in a model folder."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from medseg._typing import PathLikeStr
from medseg.data.case_table import CaseTable
from medseg.data.dataset import Dataset
from medseg.errors import ConfigError, DatasetError, MedsegError
from medseg.plan.budget import PlanBudget
from medseg.plan.cascade import CASCADE, LOWRES
from medseg.plan.plan import ClassificationConfig, Plan
from medseg.train.cascade import cascade_source, load_previous_stage, resolve_previous_stage
from medseg.train.ensemble_folder import save_ensemble_folder
from medseg.train.finetune import resolve_init_file
from medseg.train.model_folder import (
    ALL_FOLD,
    ModelFolder,
    fold_dir,
    save_model_folder,
)
from medseg.train.splits import SPLITS_NAME, load_or_make_splits
from medseg.train.trainer import (
    EpochCallback,
    FoldResult,
    LossWrapper,
    ParallelHooks,
    ProgressCallback,
    resolve_device,
    train_fold,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What :func:`train_model` produced.

    Attributes
    ----------
    model_dir : Path
        The model folder (load it with :meth:`ModelFolder.load`).
    configuration : str
    folds : list of FoldResult
        One per trained fold, in the order trained.
    cv_metrics : dict
        Mean validation Dice per class over the cross-validation folds (``model.json``); for
        an ensemble, one such dict per member configuration.
    """

    model_dir: Path
    configuration: str
    folds: list[FoldResult]
    cv_metrics: dict[str, Any]


def train_model(
    dataset: Dataset | PathLikeStr,
    out_dir: PathLikeStr,
    *,
    configuration: str | None = None,
    folds: Iterable[int] | Literal["all"] = (0,),
    epochs: int | None = None,
    device: str | torch.device = "auto",
    plan: Plan | PathLikeStr | None = None,
    budget: PlanBudget | None = None,
    overrides: Mapping[str, Any] | None = None,
    seed: int | None = None,
    num_workers: int | None = None,
    cache_dir: PathLikeStr | None = None,
    resume: bool = True,
    on_progress: ProgressCallback | None = None,
    on_epoch: EpochCallback | None = None,
    parallel: ParallelHooks | None = None,
    wrap_loss: LossWrapper | None = None,
    unlabelled: PathLikeStr | None = None,
    init: PathLikeStr | None = None,
    previous_stage: PathLikeStr | None = None,
    classify: str | None = None,
    metadata: Sequence[str] | None = None,
    case_table: PathLikeStr | None = None,
) -> TrainResult:
    """Plan (if needed), preprocess and train folds of a dataset into a model folder.

    A dataset that declares partially labelled cases (``annotated_classes`` in
    ``dataset.json``, see :mod:`medseg.data.partial`) is trained with the marginal loss.
    Unlabelled images (``unlabelled``, and training cases without a label) are used by
    semi-supervised training (``training.semi_supervised``, see :mod:`medseg.train.semi`).

    Parameters
    ----------
    dataset : Dataset or path
        A loaded dataset or anything :func:`medseg.data.load_dataset` reads.
    out_dir : path
        The model folder (created). It receives ``plan.json``, ``fingerprint.json``,
        ``splits_final.json``, ``model.json`` and one ``fold_<k>/`` per fold.
    configuration : str, optional
        A configuration of the plan (``"3d"``, ``"2d"``, ``"2.5d"``...), or one of its
        ``ensembles`` (``"multiplane"``): each member configuration is then trained into
        ``out_dir/<member>/`` (one cache), and ``out_dir`` becomes an ensemble folder
        (:mod:`medseg.train.ensemble_folder`) that prediction averages. The plan's default when
        omitted. Asking for ``"3d_lowres"`` or ``"3d_cascade_fullres"`` plans the cascade even
        where the planner would not (``make_plan(cascade=True)``).
    folds : iterable of int or "all"
        Cross-validation folds to train (0 .. plan.num_folds - 1), or ``"all"`` for one model
        trained on every case (folder ``fold_all``; its reported Dice is the patch pseudo-Dice
        on its own training cases, without the final sliding-window validation).
    epochs : int, optional
        Override ``training.epochs`` of the configuration; the fold then trains for that many
        epochs instead of a CPU plan's time budget (as does an override of ``training.epochs``).
    device : str or torch.device
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    plan : Plan or path, optional
        Use this plan (e.g. an edited ``plan.json``). Default: the plan already in ``out_dir``
        when resuming, else :func:`medseg.plan.make_plan` with ``budget``.
    budget : PlanBudget, optional
        Compute budget for planning (default: this machine).
    overrides : mapping, optional
        Dotted plan overrides, as :func:`medseg.plan.apply_overrides` (``{"training.epochs": 5}``).
    seed : int, optional
        Training seed (default ``plan.seed``); splits always use ``plan.seed``.
    num_workers : int, optional
        Augmentation worker processes (default: CPU cores - 1, at most 2).
    cache_dir : path, optional
        Preprocessed-case cache (default ``out_dir/cache``; not needed for prediction).
    resume : bool
        Skip finished folds and continue interrupted ones from their last checkpoint.
    on_progress : callable, optional
        ``on_progress(iterations_done, iterations_total)`` over all requested folds.
    on_epoch : callable, optional
        Called with each epoch's log row (a dict, with the ``fold`` number added).
    parallel : ParallelHooks, optional
        Data-parallel training; use :func:`medseg.scale.ddp.train_distributed`, which sets it.
    wrap_loss : callable, optional
        Wraps each fold's training loss (see :data:`medseg.train.trainer.LossWrapper`).
    unlabelled : path, optional
        A folder of images without labels, named as in ``imagesTr``
        (``{case}_{XXXX}{file_ending}``). Giving it turns ``training.semi_supervised`` to
        ``"mean_teacher"`` unless ``overrides`` set it.
    init : path, optional
        Fine-tune: start every fold from these weights (a model folder, a fold folder or a
        ``.safetensors`` file such as ``medseg pretrain``'s encoder); tensors whose names and
        shapes match the plan's network are loaded (:mod:`medseg.train.finetune`).
    previous_stage : path, optional
        A cascade stage (``3d_cascade_fullres``): the trained ``3d_lowres`` model folder whose
        out-of-fold segmentations become extra input channels (:mod:`medseg.train.cascade`).
        Its plan is used when no plan is given; the model folder records where it is, so
        resuming and prediction find it. Default: the one recorded in ``out_dir``.
    classify : str, optional
        Also train a case-level classifier of this case-table column (sets
        ``training.classification.target``; :mod:`medseg.train.case_head`).
    metadata : sequence of str, optional
        Case-table columns fed to the classifier beside the image features (``name``,
        ``name:num`` or ``name:cat``; sets ``training.classification.metadata``).
    case_table : path, optional
        The CSV case table (:mod:`medseg.data.case_table`); default ``cases.csv`` in the dataset
        folder. Read only when the plan classifies.

    Returns
    -------
    TrainResult
    """
    from medseg.data.partial import annotated_classes
    from medseg.plan import apply_overrides, load_or_extract_fingerprint, load_plan, make_plan
    from medseg.preprocess import preprocess_dataset

    init_file = resolve_init_file(init) if init is not None else None
    if not isinstance(dataset, Dataset):
        from medseg.data import load_dataset

        dataset = load_dataset(dataset)
    partial = annotated_classes(dataset) or None
    with_unlabelled = _with_unlabelled(dataset, unlabelled)
    if unlabelled is not None and "training.semi_supervised" not in (overrides or {}):
        overrides = {**(overrides or {}), "training.semi_supervised": "mean_teacher"}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = load_or_extract_fingerprint(dataset, out / "fingerprint.json")
    if isinstance(plan, Plan):
        chosen = plan
    elif plan is not None:
        chosen = load_plan(Path(plan))
    elif resume and (out / "plan.json").is_file():
        chosen = load_plan(out / "plan.json")
    elif previous_stage is not None:
        chosen = load_previous_stage(previous_stage).plan
    else:
        cascade = True if configuration in (LOWRES, CASCADE) else None
        chosen = make_plan(fingerprint, budget=budget, cascade=cascade)
        first = chosen.ensembles.get(configuration or "", (configuration,))[0]
        timed = chosen.configuration(first).training.time_budget_s is not None
        no_epochs = epochs is None and not _sets_epochs(overrides)
        if not chosen.budget.get("cuda") and no_epochs and not timed:
            chosen = _fit_epochs_to_time(chosen, first, device)
    chosen = apply_overrides(chosen, _classification_overrides(classify, metadata))
    chosen = apply_overrides(chosen, overrides)
    if configuration in chosen.ensembles:
        save_ensemble_folder(out, chosen, configuration)
        members = chosen.ensembles[configuration]
        trained = [
            train_model(
                dataset,
                out / member,
                configuration=member,
                folds=folds,
                epochs=epochs,
                device=device,
                plan=chosen,
                overrides=overrides,
                seed=seed,
                num_workers=num_workers,
                cache_dir=Path(cache_dir or out / "cache"),
                resume=resume,
                on_progress=_shifted(on_progress, index, len(members)),
                on_epoch=on_epoch,
                parallel=parallel,
                wrap_loss=wrap_loss,
                unlabelled=unlabelled,
                init=init,
            )
            for index, member in enumerate(members)
        ]
        return TrainResult(
            model_dir=out,
            configuration=configuration,
            folds=[fold for result in trained for fold in result.folds],
            cv_metrics={m: r.cv_metrics for m, r in zip(members, trained, strict=True)},
        )
    config = chosen.configuration(configuration)
    sets_budget = any(key.endswith("time_budget_s") for key in (overrides or {}))
    if _sets_epochs(overrides) and not sets_budget:
        config = dataclasses.replace(
            config, training=dataclasses.replace(config.training, time_budget_s=None)
        )
        chosen = chosen.with_configuration(config)
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        training = dataclasses.replace(config.training, epochs=epochs, time_budget_s=None)
        config = dataclasses.replace(config, training=training)
        chosen = chosen.with_configuration(config)
    previous = resolve_previous_stage(out, chosen, config.name, previous_stage)
    save_model_folder(
        out,
        chosen,
        configuration=config.name,
        file_ending=dataset.file_ending,
        fingerprint=fingerprint,
        previous_stage=None if previous is None else previous.path,
    )
    case_ids = sorted(c.case_id for c in dataset.labelled)
    table = _case_table(dataset, case_table, case_ids, config.training.classification)
    fold_list = _fold_list(folds, chosen.num_folds)
    splits = (
        load_or_make_splits(out / SPLITS_NAME, case_ids, chosen.num_folds, chosen.seed)
        if any(f != ALL_FOLD for f in fold_list)
        else []
    )
    semi = config.training.semi_supervised != "off"
    cache = preprocess_dataset(
        with_unlabelled if semi else dataset,
        chosen,
        config.name,
        Path(cache_dir or out / "cache"),
        unlabelled=semi,
    )
    source = cache
    if previous is not None:
        source = cascade_source(
            with_unlabelled if semi else dataset,
            cache,
            chosen,
            config.name,
            previous,
            device=resolve_device(device),
            unlabelled=semi,
        )
    unlabelled_ids = [c.case_id for c in with_unlabelled.cases if c.label_path is None]
    per_fold = config.training.epochs * config.training.iterations_per_epoch
    results = []
    for index, fold in enumerate(fold_list):
        offset = index * per_fold
        if resume and _finished(out, fold):
            logger.info("fold %s is already trained; skipping", fold)
            results.append(_finished_result(out, fold, config.training.epochs))
            if on_progress is not None:
                on_progress(offset + per_fold, per_fold * len(fold_list))
            continue
        train_ids, val_ids = (
            (case_ids, case_ids)
            if fold == ALL_FOLD
            else (splits[fold]["train"], splits[fold]["val"])
        )
        results.append(
            train_fold(
                source,
                chosen,
                config.name,
                out,
                fold,
                train_ids=train_ids,
                val_ids=val_ids,
                device=device,
                seed=chosen.seed if seed is None else seed,
                num_workers=_workers() if num_workers is None else num_workers,
                resume=resume,
                final_validation=fold != ALL_FOLD,
                on_progress=_shifted(on_progress, index, len(fold_list)),
                on_epoch=None if on_epoch is None else _tagged(on_epoch, fold),
                parallel=parallel,
                wrap_loss=wrap_loss,
                annotated=partial,
                unlabelled_ids=unlabelled_ids,
                init=init_file,
                case_table=table,
                labelled_ids=case_ids,
            )
        )
    return TrainResult(
        model_dir=out,
        configuration=config.name,
        folds=results,
        cv_metrics=ModelFolder.load(out).cv_metrics,
    )


def _classification_overrides(
    classify: str | None, metadata: Sequence[str] | None
) -> dict[str, Any]:
    """Plan overrides for ``train_model(classify=..., metadata=...)``."""
    if classify is None:
        if metadata:
            raise ConfigError("metadata fields are inputs of the classifier: give classify too")
        return {}
    return {
        "training.classification.target": classify,
        "training.classification.metadata": list(metadata or []),
    }


def _case_table(
    dataset: Dataset,
    path: PathLikeStr | None,
    case_ids: Sequence[str],
    settings: ClassificationConfig,
) -> CaseTable | None:
    """The case table a classifying plan needs (checked against the labelled cases)."""
    if settings.target is None:
        return None
    from medseg.data.case_table import (
        CASE_TABLE_NAME,
        case_classes,
        fit_metadata,
        read_case_table,
    )

    table = read_case_table(Path(path) if path is not None else dataset.root / CASE_TABLE_NAME)
    case_classes(table, settings.target, case_ids)
    fit_metadata(table, settings.metadata, case_ids)
    return table


def _with_unlabelled(dataset: Dataset, folder: PathLikeStr | None) -> Dataset:
    """``dataset`` with the images of ``folder`` added as cases without labels."""
    if folder is None:
        return dataset
    from medseg.data.nnunet import scan_images

    extra = scan_images(folder, dataset.file_ending)
    known = {c.case_id for c in dataset.cases}
    for case in extra:
        if case.case_id in known:
            raise DatasetError(
                f"{case.image_paths[0]}: unlabelled case {case.case_id!r} has the name of a "
                "training case; rename it"
            )
        if len(case.image_paths) != dataset.num_channels:
            raise DatasetError(
                f"{case.image_paths[0]}: unlabelled case {case.case_id!r} has "
                f"{len(case.image_paths)} channels, the dataset {dataset.num_channels}"
            )
    return dataclasses.replace(dataset, cases=(*dataset.cases, *extra))


def _sets_epochs(overrides: Mapping[str, Any] | None) -> bool:
    return any(key.endswith("epochs") for key in (overrides or {}))


def _fit_epochs_to_time(plan: Plan, configuration: str | None, device: str | torch.device) -> Plan:
    """On a CPU budget, replace the planned epochs by what a timed step says fits the budget."""
    from medseg.train.calibrate import calibrate_epochs, measure_iteration_seconds

    name = plan.configuration(configuration).name
    seconds = measure_iteration_seconds(plan, name, device=resolve_device(device))
    return calibrate_epochs(
        plan, name, time_budget_s=plan.budget["time_budget_s"], seconds_per_iteration=seconds
    )


def _fold_list(folds: Iterable[int] | str, num_folds: int) -> list[int]:
    if isinstance(folds, str):
        if folds != "all":
            raise ConfigError(f"folds must be fold numbers or 'all', got {folds!r}")
        return [ALL_FOLD]
    fold_list = [int(f) for f in folds]
    bad = [f for f in fold_list if not 0 <= f < num_folds and f != ALL_FOLD]
    if bad or not fold_list:
        raise ConfigError(
            f"fold {bad[0] if bad else 'list'} is not valid: folds are 0..{num_folds - 1} or 'all'"
        )
    return fold_list


def _finished(out: Path, fold: int) -> bool:
    try:
        return fold in ModelFolder.load(out).folds
    except MedsegError:
        return False


def _finished_result(out: Path, fold: int, epochs: int) -> FoldResult:
    metrics = ModelFolder.load(out).val_metrics(fold)
    dice = {k: float("nan") if v is None else float(v) for k, v in metrics.get("dice", {}).items()}
    mean = metrics.get("mean_dice")
    return FoldResult(
        fold=fold,
        path=fold_dir(out, fold),
        epochs=epochs,
        val_dice=dice,
        mean_dice=float("nan") if mean is None else float(mean),
        train_loss=float("nan"),
    )


def _workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(2, (cores or 1) - 1))


def _shifted(callback: ProgressCallback | None, index: int, count: int):
    """Progress of fold ``index`` of ``count`` as progress over all of them."""
    if callback is None:
        return None
    return lambda done, total: callback(index * total + done, total * count)


def _tagged(callback: EpochCallback, fold: int) -> EpochCallback:
    return lambda row: callback({"fold": fold, **row})
