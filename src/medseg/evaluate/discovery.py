"""Find and read the files of an evaluation: pairs by case name, label maps, probabilities.

Files pair by case name: the file name without its image ending (``case_001.nii.gz`` ->
``case_001``). A reference path is a folder of label maps or an nnU-Net dataset folder with
``labelsTr`` (its ``dataset.json`` and ``imagesTr`` are then found too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import DatasetError, GeometryError
from medseg.evaluate.labels import ClassMap

# every lossless format medseg writes a label map in (medseg.io WRITE_SUFFIXES)
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tif", ".tiff")
# what `medseg predict` writes beside a case's label map (--probabilities, --uncertainty): not
# predictions of other cases, so a prediction folder is evaluated as predict left it
PREDICT_EXTRAS = ("_probabilities", "_entropy", "_mutual_information")
PROBABILITIES_SUFFIX = "_probabilities.nii.gz"


def case_id_of(path: Path) -> str | None:
    """Case name of an image file (its name without the ending), or None if not an image."""
    name = path.name
    for ending in IMAGE_ENDINGS:
        if name.endswith(ending) and not name.startswith("."):
            return name[: -len(ending)]
    return None


def case_files(folder: Path) -> dict[str, Path]:
    """Case name -> file for every image file directly in ``folder``."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder of label maps")
    files = {}
    for path in sorted(folder.iterdir()):
        case = case_id_of(path)
        if case is not None and path.is_file():
            if case in files:
                raise DatasetError(
                    f"{folder}: two files for case {case!r}: {files[case].name}, {path.name}"
                )
            files[case] = path
    return files


@dataclass(frozen=True)
class ReferenceLayout:
    """Where the references, their ``dataset.json`` and their images are."""

    labels_dir: Path
    dataset_json: Path | None
    images_dir: Path | None


def locate_reference(ref: Path) -> ReferenceLayout:
    """Find the label folder, ``dataset.json`` and image folder of a reference path."""
    ref = Path(ref)
    labels_dir = ref / "labelsTr" if (ref / "labelsTr").is_dir() else ref
    root = labels_dir.parent
    candidates = [ref / "dataset.json", root / "dataset.json"]
    dataset_json = next((p for p in candidates if p.is_file()), None)
    images = root / "imagesTr"
    return ReferenceLayout(labels_dir, dataset_json, images if images.is_dir() else None)


def pair_cases(pred_dir: Path, labels_dir: Path) -> list[tuple[str, Path, Path]]:
    """(case, prediction file, reference file) for every case; a missing pair is an error.

    Files that `medseg predict` writes beside a label map (``{case}_entropy``...: see
    ``PREDICT_EXTRAS``) are left out when their case is predicted too.
    """
    preds, refs = case_files(Path(pred_dir)), case_files(labels_dir)
    if not refs:
        raise DatasetError(f"{labels_dir}: no label files ({', '.join(IMAGE_ENDINGS)})")
    extras = {
        name
        for name in set(preds) - set(refs)
        for extra in PREDICT_EXTRAS
        if name.endswith(extra) and name[: -len(extra)] in preds
    }
    preds = {case: path for case, path in preds.items() if case not in extras}
    missing_pred = sorted(set(refs) - set(preds))
    missing_ref = sorted(set(preds) - set(refs))
    for missing, where, what in (
        (missing_pred, pred_dir, "prediction"),
        (missing_ref, labels_dir, "reference"),
    ):
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DatasetError(
                f"{where}: no {what} for {len(missing)} case(s): {shown}; "
                f"every case needs both files with the same name"
            )
    return [(case, preds[case], refs[case]) for case in sorted(refs)]


def read_label_map(path: Path) -> tuple[np.ndarray, Any]:
    """Read a single-channel integer label map; returns (array (Z, Y, X) or (Y, X), Image)."""
    from medseg.io import read_image

    image = read_image(path)
    if image.num_channels != 1:
        raise DatasetError(f"{path}: a label map needs one channel, found {image.num_channels}")
    array = image.array[0]
    if not np.issubdtype(array.dtype, np.integer):
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            raise DatasetError(f"{path}: label map holds non-integer values; is it an image?")
        array = rounded.astype(np.int64)
    return array, image


def read_probabilities(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Softmax probabilities of one case, (C, *shape) in array order.

    Read from ``.npy``, ``.npz`` (key ``probabilities``, as nnU-Net's ``--save_probabilities``)
    or the image ``medseg predict --probabilities`` writes (``<case>_probabilities.nii.gz``,
    uint8 = probability x 255, returned as float32 in [0, 1]).
    """
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                probs = data["probabilities"]
        elif path.suffix == ".npy":
            probs = np.load(path, allow_pickle=False)
        else:
            from medseg.io import read_image

            probs = read_image(path).array
            if probs.dtype == np.uint8:
                probs = probs.astype(np.float32) / 255
    except (OSError, ValueError, KeyError) as err:
        raise DatasetError(
            f"{path}: cannot read probabilities ({err}); expected .npy, .npz with key "
            f"'probabilities' or a {PROBABILITIES_SUFFIX} image from medseg predict"
        ) from err
    if probs.ndim != len(shape) + 1 or probs.shape[1:] != tuple(shape):
        raise GeometryError(f"{path}: probabilities shape {probs.shape}, expected (C, *{shape})")
    return probs


def labels_found(pairs: Sequence[tuple[str, Path, Path]]) -> ClassMap:
    """One class per non-zero value found in any prediction or reference (no label set)."""
    values: set[int] = set()
    for _, pred_path, ref_path in pairs:
        for path in (pred_path, ref_path):
            values |= set(np.unique(read_label_map(path)[0]).tolist())
    return {str(v): (v,) for v in sorted(values - {0})}


def probability_files(folder: Path, cases: Sequence[str]) -> dict[str, Path]:
    """The probability file of every case in ``folder``: ``<case>.npz``, ``<case>.npy`` or
    ``<case>_probabilities.nii.gz`` (``medseg predict --probabilities``)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder of probability files")
    found = {}
    for case in cases:
        candidates = [
            folder / f"{case}{ending}" for ending in (".npz", ".npy", PROBABILITIES_SUFFIX)
        ]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise DatasetError(
                f"{folder}: no probabilities for case {case!r} ({case}.npz, .npy or "
                f"{case}{PROBABILITIES_SUFFIX})"
            )
        found[case] = path
    return found
