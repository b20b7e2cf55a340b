"""Batch prediction from files to files: :func:`predict_files` and its :class:`PredictReport`.

Outputs per case, in ``out_dir``:

- ``{case}{suffix}``: the label map, in the input's format (NIfTI for DICOM series input) with
  the input's spacing, origin, direction and shape; written *last*, so its presence means the
  case is complete;
- ``{case}_probabilities.nii.gz`` (optional): ``(K, ...)`` uint8, probability x 255;
- ``{case}_entropy.nii.gz`` and ``{case}_mutual_information.nii.gz`` (optional): float32 in
  [0, 1] (see :mod:`medseg.infer.uncertainty`);
- ``{case}_volumes.json`` (default on): voxel count and volume in ml (area in mm² for 2D) per
  label;
- ``{case}_seg.dcm`` (optional, DICOM series inputs only): the label map as a DICOM Segmentation
  that references the source series, one segment per foreground label named after it (see
  :func:`medseg.io.write_dicom_seg`);
- ``classification.csv`` and ``classification.json`` (models trained with ``--classify``):
  every case's class probabilities, written after the last case
  (:mod:`medseg.infer.classification`).

Every file is written atomically. A failing case (unreadable input, wrong channel count) is
recorded in the report and the next case is predicted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medseg._config import write_json
from medseg._typing import PathLikeStr
from medseg.errors import ImageWriteError, MedsegError
from medseg.infer.classification import CaseClassification, write_classification
from medseg.infer.inputs import InputCase, image_suffix, require_inputs
from medseg.infer.prediction import CaseProgressFn, ImagePredictor, Prediction, ProgressFn
from medseg.io import (
    Image,
    find_channel_files,
    read_channels,
    read_image,
    write_dicom_seg,
    write_image,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseOutput:
    """Files written for one case (``extra`` maps a kind to its path) and its volumes."""

    case_id: str
    labels_path: Path
    extra: dict[str, Path] = field(default_factory=dict)
    volumes: dict[str, dict[str, float]] = field(default_factory=dict)
    note: str = ""
    classification: CaseClassification | None = None


@dataclass(frozen=True)
class CaseFailure:
    """A case that could not be predicted, with the one-line reason."""

    case_id: str
    inputs: tuple[Path, ...]
    message: str


@dataclass(frozen=True)
class PredictReport:
    """Outcome of :func:`predict_files`: written cases and failures, in input order."""

    outputs: list[CaseOutput]
    failures: list[CaseFailure]

    @property
    def ok(self) -> bool:
        return not self.failures


def predict_files(
    predictor: ImagePredictor,
    inputs: PathLikeStr | Sequence[PathLikeStr],
    out_dir: PathLikeStr,
    *,
    probabilities: bool = False,
    uncertainty: bool = False,
    volumes_json: bool = True,
    dicom_seg: bool = False,
    on_progress: ProgressFn | None = None,
    on_case_progress: CaseProgressFn | None = None,
) -> PredictReport:
    """Predict every case found in ``inputs`` and write the outputs to ``out_dir``.

    Parameters
    ----------
    predictor : ImagePredictor
        A :class:`medseg.infer.Predictor`, or anything with its ``predict_image`` and ``model``.
    inputs : path or sequence of path
        Image files, folders of images (nnU-Net ``_0000`` channel naming is grouped), or DICOM
        series folders; see :func:`medseg.infer.inputs.find_inputs`.
    out_dir : path
        Created if missing.
    probabilities, uncertainty, volumes_json, dicom_seg : bool
        Which optional outputs to write (see the module docstring); ``dicom_seg`` applies to
        DICOM series inputs (other cases say in their note that they have none).
    on_progress : callable(done, total), optional
        Cases finished (written or failed) over cases.
    on_case_progress : callable(case_id, done, total), optional
        Tiles done within the current case.

    Returns
    -------
    PredictReport
    """
    cases = require_inputs(inputs)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ImageWriteError(f"{out}: cannot create output folder ({err.strerror})") from err
    outputs: list[CaseOutput] = []
    failures: list[CaseFailure] = []
    for done, case in enumerate(cases, start=1):
        progress = None
        if on_case_progress is not None:

            def progress(d: int, t: int, _id: str = case.case_id) -> None:
                on_case_progress(_id, d, t)

        try:
            outputs.append(
                predict_case(
                    predictor,
                    case,
                    out,
                    probabilities=probabilities,
                    uncertainty=uncertainty,
                    volumes_json=volumes_json,
                    dicom_seg=dicom_seg,
                    on_progress=progress,
                )
            )
        except MedsegError as err:
            logger.warning("case %s failed: %s", case.case_id, err)
            failures.append(CaseFailure(case.case_id, case.paths, str(err)))
        except (OSError, RuntimeError, ValueError, MemoryError) as err:
            logger.exception("case %s failed unexpectedly", case.case_id)
            failures.append(CaseFailure(case.case_id, case.paths, f"{type(err).__name__}: {err}"))
        if on_progress is not None:
            on_progress(done, len(cases))
    classified = {o.case_id: o.classification for o in outputs if o.classification is not None}
    write_classification(classified, out)
    return PredictReport(outputs, failures)


def predict_case(
    predictor: ImagePredictor,
    case: InputCase,
    out_dir: Path,
    *,
    probabilities: bool = False,
    uncertainty: bool = False,
    volumes_json: bool = True,
    dicom_seg: bool = False,
    on_progress: ProgressFn | None = None,
) -> CaseOutput:
    """Read, predict and write one case into the existing folder ``out_dir``.

    Raises what reading or predicting raises (:func:`predict_files` records it as a failure).
    """
    prediction = predictor.predict_image(
        read_case_image(case),
        probabilities=probabilities,
        uncertainty=uncertainty,
        case_id=case.case_id,
        on_progress=on_progress,
    )
    return _write_case(prediction, case, Path(out_dir), predictor, volumes_json, dicom_seg)


def read_case_image(case: InputCase) -> Image:
    """Read a case's channel files (or DICOM folder) into one channel-first image."""
    if len(case.paths) == 1:
        return read_image(case.paths[0])
    first = case.paths[0]
    ending = first.name[-len(image_suffix(first) or first.suffix) :]
    return read_channels(find_channel_files(first.parent, case.case_id, ending))


def label_volumes(labels: Image, names: dict[str, int]) -> dict[str, dict[str, float]]:
    """Voxel count and size of each foreground label.

    Parameters
    ----------
    labels : Image
        ``(1, *spatial)`` integer label map with its spacing in mm.
    names : dict of str to int
        Label name -> value; background (0) is skipped.

    Returns
    -------
    dict
        ``{name: {"voxels": n, "volume_ml": v}}`` for 3D (ml = cm³), ``"area_mm2"`` for 2D.
    """
    voxel = math.prod(labels.spacing)
    counts = np.bincount(labels.array.ravel().astype(np.int64), minlength=max(names.values()) + 1)
    key, unit = ("volume_ml", 1e-3) if labels.ndim == 3 else ("area_mm2", 1.0)
    return {
        name: {"voxels": int(counts[value]), key: float(counts[value] * voxel * unit)}
        for name, value in sorted(names.items(), key=lambda item: item[1])
        if value != 0
    }


def _write_case(
    prediction: Prediction,
    case: InputCase,
    out: Path,
    predictor: ImagePredictor,
    volumes_json: bool,
    dicom_seg: bool,
) -> CaseOutput:
    extra: dict[str, Path] = {}
    note = case.note
    if prediction.probabilities is not None:
        path = out / f"{case.case_id}_probabilities.nii.gz"
        write_image(prediction.probabilities.with_array(_to_uint8(prediction.probabilities)), path)
        extra["probabilities"] = path
    for kind, image in prediction.uncertainty.items():
        path = out / f"{case.case_id}_{kind}.nii.gz"
        write_image(image, path)
        extra[kind] = path
    volumes = label_volumes(prediction.labels, predictor.model.labels)
    if volumes_json:
        path = out / f"{case.case_id}_volumes.json"
        write_json({"case_id": case.case_id, "labels": volumes}, path)
        extra["volumes"] = path
    if dicom_seg:
        if len(case.paths) == 1 and case.paths[0].is_dir():
            path = out / f"{case.case_id}_seg.dcm"
            names = segment_names(predictor.model)
            extra["dicom_seg"] = write_dicom_seg(prediction.labels, case.paths[0], names, path)
        else:
            note = "; ".join(filter(None, (note, "not a DICOM series: no DICOM-SEG written")))
    labels_path = out / f"{case.case_id}{case.suffix}"
    write_image(prediction.labels, labels_path)
    return CaseOutput(case.case_id, labels_path, extra, volumes, note, prediction.classification)


def segment_names(model: Any) -> dict[int, str]:
    """Name of each value a model's label maps hold (background excluded).

    The label names of ``model.labels`` (not ``background`` nor nnU-Net's ``ignore``, which a
    prediction never holds); for a region-based plan the regions, each painted with its value
    of ``region_order``.
    """
    plan = getattr(model, "plan", None)
    if plan is not None and plan.regions:
        return {int(v): name for v, name in zip(plan.region_order, plan.regions, strict=True)}
    return {
        int(v): name for name, v in model.labels.items() if name not in ("background", "ignore")
    }


def _to_uint8(probabilities: Image) -> np.ndarray:
    values = probabilities.array.astype(np.float32)
    return np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)
