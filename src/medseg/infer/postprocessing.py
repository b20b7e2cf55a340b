"""Post-processing rules for label maps and their selection by cross-validation (docs/predict.md).

Rules are data, saved as ``model/postprocessing.json``::

    {"keep_largest_foreground": false, "keep_largest": [1], "fill_holes": [2],
     "min_component_size": [[3, 8]]}

and applied in that order:

1. ``keep_largest_foreground``: keep only the largest connected component of all foreground
   labels together; everything else becomes background (0).
2. ``keep_largest``: for each listed label, voxels outside its largest component become 0.
3. ``fill_holes``: for each listed label, background voxels fully enclosed by it (SciPy's
   ``binary_fill_holes``) take that label. Other labels inside are left alone.
4. ``min_component_size``: ``[label, n]`` pairs; components of that label with fewer than ``n``
   voxels take the label of the nearest voxel outside them
   (:func:`medseg.infer.small_components.remove_small_components`).

Connectivity is full (26 in 3D, 8 in 2D), as cc3d's default. :func:`select_postprocessing`
tries each step on cross-validation predictions and keeps it only if it raises that class's
mean Dice over cases (step 1: the foreground-mean Dice rises and no class drops), as nnU-Net.
Step 4 tries sizes of :data:`~medseg.infer.small_components.SIZE_CANDIDATES` per label: for a
detection target (2+ reference components per case, e.g. lesions) the size with the best
lesion-wise F1 (one-to-one matching, IoU > 0.5, counts summed over cases) is kept if F1 rises
and the label's Dice falls by at most ``MAX_DICE_LOSS``; failing that, the smallest size (single
voxels removed) is kept unless it lowers F1 or Dice. A one-voxel component is a false positive
unless the reference has one-voxel lesions, and validation cases the network trained on (a
``folds="all"`` run) show too few false positives to vote for any size. For other labels the
size with the best Dice, if Dice rises. Each accepted step is applied before the next is tested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg._config import from_jsonable, read_json, write_json
from medseg._typing import BoolArray, IntArray
from medseg.infer.small_components import (
    MAX_DICE_LOSS,
    SIZE_CANDIDATES,
    is_multi_component,
    pooled_f1,
    remove_small_components,
)

POSTPROCESSING_FILE = "postprocessing.json"


@dataclass(frozen=True, kw_only=True)
class PostprocessingRules:
    """Which clean-up steps to apply to a predicted label map (see module docstring)."""

    keep_largest_foreground: bool = False
    keep_largest: tuple[int, ...] = ()
    fill_holes: tuple[int, ...] = ()
    min_component_size: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_dict(cls, data: dict, *, source: str = POSTPROCESSING_FILE) -> PostprocessingRules:
        """Validate a JSON dict (unknown key or wrong type -> ``ConfigError``)."""
        return from_jsonable(cls, data or {}, source=source)

    @property
    def is_empty(self) -> bool:
        return not (
            self.keep_largest_foreground
            or self.keep_largest
            or self.fill_holes
            or self.min_component_size
        )


@dataclass(frozen=True)
class SelectionStep:
    """One tested step: the score of the affected class(es) before and after.

    The score is the mean Dice over cases, or for ``min_component_size`` on a detection target
    the lesion-wise F1 (``metric``); ``size`` is the minimum component size tried.
    """

    step: str
    label: int | None
    dice_before: float
    dice_after: float
    accepted: bool
    metric: str = "dice"
    size: int | None = None


def largest_component(mask: BoolArray) -> BoolArray:
    """The largest connected component of a 2D or 3D mask (full connectivity); empty stays empty."""
    import cc3d

    if not mask.any():
        return mask.copy()
    connectivity = 26 if mask.ndim == 3 else 8
    return cc3d.largest_k(mask, k=1, connectivity=connectivity, binary_image=True) > 0


def apply_postprocessing(labels: IntArray, rules: PostprocessingRules) -> IntArray:
    """Apply ``rules`` to a label map; the input is not modified.

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X) or (Y, X)
        Label values, 0 = background.
    rules : PostprocessingRules

    Returns
    -------
    ndarray, same shape and dtype as ``labels``
    """
    out = labels.copy()
    if rules.keep_largest_foreground:
        foreground = out > 0
        out[foreground & ~largest_component(foreground)] = 0
    for label in rules.keep_largest:
        mask = out == label
        out[mask & ~largest_component(mask)] = 0
    for label in rules.fill_holes:
        mask = out == label
        filled = ndimage.binary_fill_holes(mask)
        out[filled & (out == 0)] = label
    for label, min_voxels in rules.min_component_size:
        out = remove_small_components(out, label, min_voxels)
    return out


def select_postprocessing(
    predictions: Sequence[IntArray],
    references: Sequence[IntArray],
    labels: Sequence[int],
    *,
    ignore_label: int | None = None,
) -> tuple[PostprocessingRules, list[SelectionStep]]:
    """Choose the rules that improve cross-validation Dice (nnU-Net A7, plus hole filling).

    Parameters
    ----------
    predictions, references : sequence of ndarray of int, each (Z, Y, X) or (Y, X)
        Cross-validation predictions and their reference label maps, pairwise on one grid.
    labels : sequence of int
        Foreground label values to consider.
    ignore_label : int, optional
        Reference voxels with this value are excluded from Dice.

    Returns
    -------
    rules : PostprocessingRules
    steps : list of SelectionStep
        Every test made, in order, with its Dice before and after.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    labels = [int(v) for v in labels if v != 0 and v != ignore_label]
    current = [np.asarray(p) for p in predictions]
    rules = PostprocessingRules()
    steps: list[SelectionStep] = []

    def scores(preds: list[IntArray]) -> dict[int, float]:
        return {v: _mean_dice(preds, references, v, ignore_label) for v in labels}

    base = scores(current)
    trial_rules = PostprocessingRules(keep_largest_foreground=True)
    trial = [apply_postprocessing(p, trial_rules) for p in current]
    after = scores(trial)
    before_mean, after_mean = _nanmean(base.values()), _nanmean(after.values())
    accepted = after_mean > before_mean and all(
        not after[v] < base[v] for v in labels if np.isfinite(base[v])
    )
    steps.append(SelectionStep("keep_largest_foreground", None, before_mean, after_mean, accepted))
    if accepted:
        rules, current, base = trial_rules, trial, after

    for step in ("keep_largest", "fill_holes"):
        for label in labels:
            single = PostprocessingRules(**{step: (label,)})
            trial = [apply_postprocessing(p, single) for p in current]
            dice_after = _mean_dice(trial, references, label, ignore_label)
            accepted = dice_after > base[label]
            steps.append(SelectionStep(step, label, base[label], dice_after, accepted))
            if accepted:
                rules = replace(rules, **{step: (*getattr(rules, step), label)})
                current = trial
                base = scores(current)
    for label in labels:
        step_, trial = _min_size_step(current, references, label, base[label], ignore_label)
        steps.append(step_)
        if step_.accepted and step_.size is not None:
            pairs = (*rules.min_component_size, (label, step_.size))
            rules = replace(rules, min_component_size=pairs)
            current = trial
            base = scores(current)
    return rules, steps


def _min_size_step(
    current: list[IntArray],
    references: Sequence[IntArray],
    label: int,
    dice_before: float,
    ignore_label: int | None,
) -> tuple[SelectionStep, list[IntArray]]:
    """Try every candidate size for ``label``; the best one, accepted or not, and its output."""
    detection = is_multi_component(references, label)
    before = pooled_f1(current, references, label) if detection else dice_before
    score, size, trial, dice = -np.inf, SIZE_CANDIDATES[0], current, dice_before
    for candidate in SIZE_CANDIDATES:  # the smallest size wins a tie
        outputs = [remove_small_components(p, label, candidate) for p in current]
        candidate_dice = _mean_dice(outputs, references, label, ignore_label)
        value = pooled_f1(outputs, references, label) if detection else candidate_dice
        if value > score:
            score, size, trial, dice = value, candidate, outputs, candidate_dice
    accepted = score > before
    if detection and np.isfinite(dice_before):
        accepted = accepted and dice >= dice_before - MAX_DICE_LOSS
    if detection and not accepted:  # single voxels go unless the validation cases object
        outputs = [remove_small_components(p, label, SIZE_CANDIDATES[0]) for p in current]
        smallest_dice = _mean_dice(outputs, references, label, ignore_label)
        smallest_f1 = pooled_f1(outputs, references, label)
        if smallest_f1 >= before and not smallest_dice < dice_before:
            score, size, trial, accepted = smallest_f1, SIZE_CANDIDATES[0], outputs, True
    metric = "lesion_f1" if detection else "dice"
    step = SelectionStep("min_component_size", label, before, score, accepted, metric, size)
    return step, trial


def load_postprocessing(model_dir: Path) -> PostprocessingRules:
    """Rules saved in ``model_dir/postprocessing.json``; no rules if the file is absent."""
    path = Path(model_dir) / POSTPROCESSING_FILE
    if not path.exists():
        return PostprocessingRules()
    return PostprocessingRules.from_dict(read_json(path), source=str(path))


def save_postprocessing(rules: PostprocessingRules, model_dir: Path) -> Path:
    """Write ``model_dir/postprocessing.json`` atomically and return its path."""
    path = Path(model_dir) / POSTPROCESSING_FILE
    write_json(rules, path)
    return path


def _mean_dice(
    predictions: Sequence[IntArray],
    references: Sequence[IntArray],
    label: int,
    ignore_label: int | None,
) -> float:
    """Mean over cases of Dice for one label; a case empty in both is skipped (NaN rule)."""
    values = []
    for pred, ref in zip(predictions, references, strict=True):
        valid: npt.NDArray[np.bool_] | bool = True if ignore_label is None else ref != ignore_label
        p = (pred == label) & valid
        r = (ref == label) & valid
        denominator = int(p.sum()) + int(r.sum())
        values.append(np.nan if denominator == 0 else 2.0 * int((p & r).sum()) / denominator)
    return _nanmean(values)


def _nanmean(values) -> float:  # type: ignore[no-untyped-def]
    array = np.asarray(list(values), dtype=float)
    return float(np.nanmean(array)) if np.isfinite(array).any() else float("nan")
