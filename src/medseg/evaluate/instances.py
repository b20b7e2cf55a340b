"""Instance segmentation metrics (nuclei, cells): F1 at an IoU threshold, PQ = SQ x RQ, AJI.

Inputs are *instance* label maps: 0 is background, every other value one object (any integers,
not necessarily consecutive). Objects are matched one to one.

- **Matching**: a predicted and a reference object match when their IoU exceeds ``iou_threshold``
  (strictly). At 0.5 or more every object has at most one candidate, so the matching is unique;
  below 0.5 the Hungarian algorithm chooses the most pairs, and among those the largest summed
  IoU (as StarDist does).
- **F1** = 2 TP / (2 TP + FP + FN); precision TP / (TP + FP); recall TP / (TP + FN).
- **PQ** (Kirillov et al. 2019) = SQ x RQ, with SQ the mean IoU of the matched pairs and RQ the
  F1 above.
- **AJI** (Kumar et al. 2017): each reference object is paired with the predicted object of
  largest IoU among those it overlaps (a prediction may serve several references); AJI =
  sum |G ∩ S| / (sum |G ∪ S| + area of the predictions never chosen).

Empty cases: no object on either side gives NaN everywhere (nothing to score); objects on one
side only give F1 = PQ = AJI = 0 and SQ = NaN (no matched pair).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from medseg.errors import GeometryError


@dataclass(frozen=True, kw_only=True)
class InstanceScores:
    """Instance metrics of one image (or one class of one image).

    Attributes
    ----------
    tp, fp, fn : int
        Matched pairs, unmatched predictions, unmatched references.
    precision, recall, f1, sq, rq, pq, aji : float
        See the module docstring; NaN where undefined.
    n_pred, n_ref : int
        Object counts.
    """

    tp: int
    fp: int
    fn: int
    n_pred: int
    n_ref: int
    precision: float
    recall: float
    f1: float
    sq: float
    rq: float
    pq: float
    aji: float

    def as_dict(self) -> dict[str, float]:
        """Plain numbers (counts as floats) for CSV and JSON."""
        return {k: float(v) for k, v in asdict(self).items()}


def _overlaps(
    pred: npt.NDArray[np.integer], ref: npt.NDArray[np.integer]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64],
           npt.NDArray[np.int64], npt.NDArray[np.int64]]:  # fmt: skip
    """Reference ids, predicted ids, their areas and the intersection matrix (ref x pred)."""
    ref_ids, ref_inverse = np.unique(ref, return_inverse=True)
    pred_ids, pred_inverse = np.unique(pred, return_inverse=True)
    ref_areas = np.bincount(ref_inverse.ravel(), minlength=ref_ids.size)
    pred_areas = np.bincount(pred_inverse.ravel(), minlength=pred_ids.size)
    pairs = ref_inverse.ravel().astype(np.int64) * pred_ids.size + pred_inverse.ravel()
    inter = np.bincount(pairs, minlength=ref_ids.size * pred_ids.size)
    inter = inter.reshape(ref_ids.size, pred_ids.size)
    keep_ref, keep_pred = ref_ids != 0, pred_ids != 0
    return (
        ref_ids[keep_ref],
        pred_ids[keep_pred],
        ref_areas[keep_ref],
        pred_areas[keep_pred],
        inter[np.ix_(keep_ref, keep_pred)],
    )


def instance_metrics(
    pred: npt.ArrayLike, ref: npt.ArrayLike, *, iou_threshold: float = 0.5
) -> InstanceScores:
    """Score a predicted instance map against a reference one.

    Parameters
    ----------
    pred, ref : array of int, shape (Y, X) or (Z, Y, X)
        Instance label maps on the same grid; 0 is background.
    iou_threshold : float
        Pairs match when IoU > this (0.5 by default, the usual F1/PQ setting).

    Returns
    -------
    InstanceScores

    Raises
    ------
    GeometryError
        The maps differ in shape.
    ValueError
        Non-integer maps or a threshold outside [0, 1).
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise GeometryError(f"instance maps differ in shape: {pred.shape} vs {ref.shape}")
    for name, array in (("pred", pred), ("ref", ref)):
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            raise ValueError(f"{name} must be an integer instance map, got {array.dtype}")
    if not 0 <= iou_threshold < 1:
        raise ValueError(f"iou_threshold must be in [0, 1), got {iou_threshold}")
    _, _, ref_areas, pred_areas, inter = _overlaps(pred, ref)
    n_ref, n_pred = ref_areas.size, pred_areas.size
    if n_ref == 0 and n_pred == 0:
        nan = math.nan
        return InstanceScores(
            tp=0, fp=0, fn=0, n_pred=0, n_ref=0, precision=nan, recall=nan, f1=nan,
            sq=nan, rq=nan, pq=nan, aji=nan,
        )  # fmt: skip
    union = ref_areas[:, None] + pred_areas[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros(inter.shape, dtype=np.float64), where=union > 0)
    matched = _match(iou, iou_threshold)
    tp = len(matched)
    fp, fn = n_pred - tp, n_ref - tp
    sq = float(np.mean([iou[r, p] for r, p in matched])) if tp else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn)
    return InstanceScores(
        tp=tp,
        fp=fp,
        fn=fn,
        n_pred=n_pred,
        n_ref=n_ref,
        precision=tp / n_pred if n_pred else math.nan,
        recall=tp / n_ref if n_ref else math.nan,
        f1=f1,
        sq=sq,
        rq=f1,
        pq=sq * f1 if tp else 0.0,
        aji=_aji(iou, inter, union, pred_areas, ref_areas),
    )


def _match(iou: npt.NDArray[np.float64], threshold: float) -> list[tuple[int, int]]:
    """One-to-one pairs (ref index, pred index) with IoU > threshold."""
    if iou.size == 0:
        return []
    if threshold >= 0.5:
        rows, cols = np.nonzero(iou > threshold)
        return list(zip(rows.tolist(), cols.tolist(), strict=True))
    valid = iou > threshold
    # most pairs first, then the largest summed IoU among those (the IoU term sums below 1)
    cost = -valid.astype(np.float64) - iou * valid / (2.0 * min(iou.shape))
    rows, cols = linear_sum_assignment(cost)
    return [(r, c) for r, c in zip(rows, cols, strict=True) if valid[r, c]]


def _aji(
    iou: npt.NDArray[np.float64],
    inter: npt.NDArray[np.int64],
    union: npt.NDArray[np.int64],
    pred_areas: npt.NDArray[np.int64],
    ref_areas: npt.NDArray[np.int64],
) -> float:
    intersection_sum, union_sum = 0, 0
    used = np.zeros(pred_areas.size, dtype=bool)
    for r in range(ref_areas.size):
        if pred_areas.size == 0 or inter[r].max() == 0:
            union_sum += int(ref_areas[r])
            continue
        best = int(np.argmax(iou[r]))
        intersection_sum += int(inter[r, best])
        union_sum += int(union[r, best])
        used[best] = True
    union_sum += int(pred_areas[~used].sum())
    return intersection_sum / union_sum if union_sum else math.nan


def instance_metrics_per_class(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    pred_classes: npt.ArrayLike,
    ref_classes: npt.ArrayLike,
    *,
    iou_threshold: float = 0.5,
) -> dict[int, InstanceScores]:
    """Per-class instance metrics (PanNuke-style): objects take their pixels' majority class.

    Parameters
    ----------
    pred, ref : array of int
        Instance maps.
    pred_classes, ref_classes : array of int, same shape
        Semantic class per pixel (0 background).

    Returns
    -------
    dict of int to InstanceScores
        One entry per class present on either side.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    pred_typed = _typed(pred, np.asarray(pred_classes))
    ref_typed = _typed(ref, np.asarray(ref_classes))
    classes = sorted((set(pred_typed.values()) | set(ref_typed.values())) - {0})
    scores = {}
    for cls in classes:
        keep_pred = [i for i, c in pred_typed.items() if c == cls]
        keep_ref = [i for i, c in ref_typed.items() if c == cls]
        scores[cls] = instance_metrics(
            np.where(np.isin(pred, keep_pred), pred, 0),
            np.where(np.isin(ref, keep_ref), ref, 0),
            iou_threshold=iou_threshold,
        )
    return scores


def _typed(instances: npt.NDArray[np.integer], classes: npt.NDArray[np.integer]) -> dict[int, int]:
    """Majority class of every object."""
    if instances.shape != classes.shape:
        raise GeometryError(f"class map {classes.shape} differs from instances {instances.shape}")
    inside = instances != 0
    objects, classes_of = instances[inside].astype(np.int64), classes[inside].astype(np.int64)
    pairs, counts = np.unique(np.stack([objects, classes_of]), axis=1, return_counts=True)
    result: dict[int, int] = {}
    best: dict[int, int] = {}
    for (obj, cls), count in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if count > best.get(obj, 0):
            best[obj], result[obj] = count, cls
    return result


INSTANCE_CSV = "instances_per_case.csv"
INSTANCE_SUMMARY = "instances_summary.json"
_INSTANCE_ENDINGS = (".png", ".nii.gz", ".nii", ".nrrd", ".mha", ".tif", ".tiff")


@dataclass(frozen=True, kw_only=True)
class InstanceEvaluation:
    """Per-case instance scores and their summary.

    Attributes
    ----------
    cases : dict of str to InstanceScores
    iou_threshold : float
    """

    cases: dict[str, InstanceScores]
    iou_threshold: float

    def summary(self) -> dict[str, object]:
        """Means over cases (NaN cases skipped) and F1 from counts pooled over all cases."""
        metrics = ("precision", "recall", "f1", "sq", "rq", "pq", "aji")
        means = {}
        for name in metrics:
            values = [getattr(s, name) for s in self.cases.values()]
            finite = [v for v in values if not math.isnan(v)]
            means[name] = float(np.mean(finite)) if finite else math.nan
        tp = sum(s.tp for s in self.cases.values())
        fp = sum(s.fp for s in self.cases.values())
        fn = sum(s.fn for s in self.cases.values())
        pooled = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
        return {
            "cases": len(self.cases),
            "iou_threshold": self.iou_threshold,
            "mean": means,
            "pooled": {"tp": tp, "fp": fp, "fn": fn, "f1": pooled},
        }

    def table(self) -> object:
        """A Rich table: one row per case, then the mean."""
        from rich.table import Table

        table = Table(title=f"instances (IoU > {self.iou_threshold})")
        for column in ("case", "n_ref", "n_pred", "F1", "PQ", "SQ", "AJI"):
            table.add_column(column, justify="left" if column == "case" else "right")
        for case, s in self.cases.items():
            table.add_row(
                case, str(s.n_ref), str(s.n_pred),
                *(f"{v:.3f}" for v in (s.f1, s.pq, s.sq, s.aji)),
            )  # fmt: skip
        mean: dict[str, float] = self.summary()["mean"]  # type: ignore[assignment]
        table.add_row("mean", "", "", *(f"{mean[k]:.3f}" for k in ("f1", "pq", "sq", "aji")))
        return table


def _nan_to_none(value: object) -> object:
    """Undefined metrics as JSON null (``NaN`` is not JSON)."""
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _instance_files(folder: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(Path(folder).iterdir()):
        for ending in _INSTANCE_ENDINGS:
            if path.name.endswith(ending) and not path.name.startswith("."):
                files[path.name[: -len(ending)]] = path
                break
    return files


def evaluate_instance_folders(
    pred_dir: Path | str,
    ref_dir: Path | str,
    *,
    out_dir: Path | str | None = None,
    iou_threshold: float = 0.5,
) -> InstanceEvaluation:
    """Score every case of two folders of instance label maps (paired by file name).

    Parameters
    ----------
    pred_dir, ref_dir : path
        Instance maps (PNG, TIFF, NIfTI, ...); ``case.png`` pairs with ``case.png`` or
        ``case.tif``.
    out_dir : path, optional
        Writes ``instances_per_case.csv`` and ``instances_summary.json`` there.
    iou_threshold : float

    Raises
    ------
    DatasetError
        Empty folders, unpaired cases, or a file that is not a single-channel integer map.
    """
    from medseg._atomic import write_text_atomic
    from medseg.errors import DatasetError
    from medseg.evaluate.discovery import read_label_map

    preds, refs = _instance_files(Path(pred_dir)), _instance_files(Path(ref_dir))
    if not refs:
        raise DatasetError(f"{ref_dir}: no instance label maps ({', '.join(_INSTANCE_ENDINGS)})")
    unpaired = sorted(set(refs) ^ set(preds))
    if unpaired:
        raise DatasetError(
            f"{pred_dir} and {ref_dir}: {len(unpaired)} case(s) without a partner "
            f"({', '.join(unpaired[:5])}); every case needs both files"
        )
    cases = {}
    for case in sorted(refs):
        pred, _ = read_label_map(preds[case])
        ref, _ = read_label_map(refs[case])
        try:
            cases[case] = instance_metrics(pred, ref, iou_threshold=iou_threshold)
        except GeometryError as err:
            raise GeometryError(f"{preds[case]}: {err}") from err
    result = InstanceEvaluation(cases=cases, iou_threshold=iou_threshold)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        rows = [{"case": case, **s.as_dict()} for case, s in cases.items()]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(buffer.getvalue(), out / INSTANCE_CSV)
        summary = json.dumps(_nan_to_none(result.summary()), indent=2, sort_keys=True)
        write_text_atomic(summary + "\n", out / INSTANCE_SUMMARY)
    return result
