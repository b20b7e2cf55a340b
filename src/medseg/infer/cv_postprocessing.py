"""Choose post-processing from cross-validation predictions and save ``postprocessing.json``.

Each fold's network predicts the validation cases of that fold (``splits_final.json`` in the
model folder), without post-processing; :func:`select_postprocessing` then keeps the steps that
raise cross-validation Dice (docs/predict.md). Saved predictions can be used instead.
:func:`postprocessing_from_training` makes the same choice in seconds from the label maps that
training's last whole-case validation left in each fold (``validation_labels.npz``), as
``medseg train`` does after training.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medseg._config import read_json, write_json
from medseg._typing import IntArray, PathLikeStr
from medseg.data.dataset import Dataset
from medseg.errors import DatasetError, ModelFormatError
from medseg.infer.postprocessing import (
    PostprocessingRules,
    SelectionStep,
    save_postprocessing,
    select_postprocessing,
)
from medseg.infer.predictor import Predictor
from medseg.io import read_image
from medseg.plan.cases import read_case

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class PostprocessingChoice:
    """The chosen rules, every test made, where the rules were written, and on which cases.

    ``on_training_cases``: the rules were chosen on cases the network trained on (a model
    trained with ``folds="all"``), not on held-out ones.
    """

    rules: PostprocessingRules
    steps: list[SelectionStep]
    path: Path
    on_training_cases: bool = False


def determine_postprocessing(
    model_dir: PathLikeStr,
    dataset: Dataset,
    *,
    folds: Sequence[int] | None = None,
    predictions_dir: PathLikeStr | None = None,
    device: str = "auto",
    tta: bool = True,
    step: float = 0.5,
    on_progress: ProgressFn | None = None,
    output: PathLikeStr | None = None,
) -> PostprocessingChoice:
    """Select post-processing by cross-validation and write ``model_dir/postprocessing.json``.

    Parameters
    ----------
    model_dir : path
        Trained model folder with ``splits_final.json``.
    dataset : Dataset
        The training dataset (labelled cases are looked up by ID).
    folds : sequence of int, optional
        Folds to use; every trained cross-validation fold by default.
    predictions_dir : path, optional
        Folder of saved CV predictions ``{case_id}{dataset.file_ending}``; used instead of
        predicting.
    device, tta, step
        Passed to :class:`Predictor` when predicting.
    on_progress : callable(done, total), optional
        Validation cases done over cases.
    output : path, optional
        Rules file to write instead of ``model_dir/postprocessing.json`` (which
        :class:`Predictor` applies): to compare choices without changing the model.

    Returns
    -------
    PostprocessingChoice

    Raises
    ------
    ModelFormatError
        No splits file, or no cross-validation fold.
    DatasetError
        A validation case is missing from ``dataset`` or from ``predictions_dir``.
    """
    from medseg.train.model_folder import ALL_FOLD, ModelFolder

    model = ModelFolder.load(Path(model_dir))
    splits_path = model.path / "splits_final.json"
    if not splits_path.is_file():
        raise ModelFormatError(f"{splits_path}: missing; post-processing needs the CV splits")
    splits = read_json(splits_path)
    chosen = [f for f in (model.folds if folds is None else folds) if f != ALL_FOLD]
    if not chosen:
        raise ModelFormatError(f"{model.path}: no cross-validation fold to select rules from")
    if not isinstance(splits, list) or any(f >= len(splits) for f in chosen):
        raise ModelFormatError(f"{splits_path}: no split for fold(s) {chosen}")
    jobs = [(fold, case_id) for fold in chosen for case_id in splits[fold]["val"]]
    predictions: list[IntArray] = []
    references: list[IntArray] = []
    predictors: dict[int, Predictor] = {}
    for done, (fold, case_id) in enumerate(jobs, start=1):
        try:
            case = dataset.case(case_id)
        except KeyError as err:
            raise DatasetError(
                f"validation case {case_id!r} of fold {fold} is not in dataset {dataset.name}"
            ) from err
        image, reference = read_case(case)
        if reference is None:
            raise DatasetError(f"validation case {case_id!r} has no label map")
        if predictions_dir is None:
            if fold not in predictors:
                predictors[fold] = Predictor(
                    model.path, device=device, folds=[fold], tta=tta, step=step, postprocess=False
                )
            predicted = predictors[fold].predict_image(image, case_id=case_id).labels.array[0]
        else:
            path = Path(predictions_dir) / f"{case_id}{dataset.file_ending}"
            if not path.is_file():
                raise DatasetError(f"{path}: CV prediction of case {case_id!r} not found")
            predicted = read_image(path).array[0]
        predictions.append(np.asarray(predicted))
        references.append(np.asarray(reference))
        if on_progress is not None:
            on_progress(done, len(jobs))
    plan = model.plan
    labels = plan.region_order if plan.regions else plan.labels.values()
    rules, steps = select_postprocessing(
        predictions, references, list(labels), ignore_label=plan.ignore_label
    )
    return _write_choice(rules, steps, model.path, output)


def postprocessing_from_training(
    model_dir: PathLikeStr, *, output: PathLikeStr | None = None
) -> PostprocessingChoice | None:
    """Select post-processing from the validation label maps training saved in each fold.

    Uses every fold's ``validation_labels.npz`` (the best validation of a time-budgeted run,
    or the final one of an epoch-counted run), on the preprocessed grid. A minimum component
    size chosen there is converted to original voxels with the median ratio of voxel volumes
    (preprocessed / original) over those cases. With ``folds="all"`` the validation cases are
    training cases: the choice is then made on data the network has seen (``on_training_cases``
    in the result).

    Returns
    -------
    PostprocessingChoice or None
        ``None`` (and nothing written) when no fold saved validation labels, e.g. a model
        trained on partially labelled cases or with no validation, and for an ensemble folder
        (``multiplane``), whose prediction applies no rules.
    """
    from medseg.train.ensemble_folder import is_ensemble_folder
    from medseg.train.model_folder import ALL_FOLD, ModelFolder, fold_dir
    from medseg.train.validation import VALIDATION_LABELS

    if is_ensemble_folder(model_dir):
        return None
    model = ModelFolder.load(Path(model_dir))
    predictions: list[IntArray] = []
    references: list[IntArray] = []
    ratios: list[float] = []
    used = []
    for fold in model.folds:
        path = fold_dir(model.path, fold) / VALIDATION_LABELS
        if not path.is_file():
            continue
        used.append(fold)
        try:
            with np.load(path, allow_pickle=False) as saved:
                for key in saved.files:
                    if key.startswith("pred:"):
                        case_id = key[len("pred:") :]
                        predictions.append(saved[key])
                        references.append(saved[f"ref:{case_id}"])
                        ratios.append(float(saved[f"voxel_ratio:{case_id}"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise ModelFormatError(
                f"{path}: unreadable validation labels ({err}); delete the file to skip this "
                "fold, or train the fold again"
            ) from err
    if not predictions:
        return None
    plan = model.plan
    labels = plan.region_order if plan.regions else plan.labels.values()
    rules, steps = select_postprocessing(
        predictions, references, list(labels), ignore_label=plan.ignore_label
    )
    ratio = float(np.median(ratios))
    sizes = tuple((label, max(1, round(size * ratio))) for label, size in rules.min_component_size)
    rules = replace(rules, min_component_size=sizes)
    choice = _write_choice(rules, steps, model.path, output)
    return replace(choice, on_training_cases=ALL_FOLD in used)


def _write_choice(
    rules: PostprocessingRules,
    steps: list[SelectionStep],
    model_path: Path,
    output: PathLikeStr | None,
) -> PostprocessingChoice:
    if output is None:
        return PostprocessingChoice(rules, steps, save_postprocessing(rules, model_path))
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(rules, path)
    return PostprocessingChoice(rules, steps, path)
