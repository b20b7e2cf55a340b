"""Find a dataset on disk: nnU-Net raw folders, paired image/mask folders and CSV manifests.

:func:`load_dataset` picks the loader from what it finds:

* a ``.csv`` file -> :func:`load_manifest`;
* a folder with ``dataset.json`` -> :func:`medseg.data.nnunet.load_nnunet`;
* a folder with ``images/`` and ``masks/`` (or ``labels/``) -> :func:`load_paired_folders`.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from medseg._typing import PathLikeStr
from medseg.data._paths import resolve_inside, split_ending, visible_files
from medseg.data.dataset import Case, Dataset, LabelSpec
from medseg.data.nnunet import load_nnunet, parse_labels
from medseg.errors import DatasetError, ImageReadError

logger = logging.getLogger(__name__)

MASK_FOLDER_NAMES = ("masks", "labels")
_CHANNEL_COLUMN = re.compile(r"^image_(\d{4})$")


def load_dataset(path: PathLikeStr) -> Dataset:
    """Load a dataset, detecting its layout.

    Parameters
    ----------
    path : path
        A CSV manifest, an nnU-Net raw folder (with ``dataset.json``), or a folder holding
        ``images/`` and ``masks/`` (or ``labels/``).

    Raises
    ------
    DatasetError
        If ``path`` does not exist or matches none of the layouts.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_manifest(path)
    if path.is_dir():
        if (path / "dataset.json").is_file():
            return load_nnunet(path)
        for mask_name in MASK_FOLDER_NAMES:
            if (path / "images").is_dir() and (path / mask_name).is_dir():
                return load_paired_folders(path / "images", path / mask_name)
    if not path.exists():
        raise DatasetError(f"{path}: not found")
    raise DatasetError(
        f"{path}: not a recognised dataset; expected an nnU-Net folder with dataset.json, a "
        "folder with images/ and masks/, or a CSV manifest"
    )


def load_paired_folders(
    images: PathLikeStr,
    masks: PathLikeStr,
    labels: LabelSpec | Mapping[str, int] | None = None,
    *,
    channel_names: Mapping[int, str] | None = None,
) -> Dataset:
    """Pair every image in ``images`` with the mask of the same name in ``masks``.

    Names are compared without their ending, so ``a.nii.gz`` pairs with ``a.nrrd``. An image
    without a mask, or a mask without an image, becomes a case that the check reports.

    Parameters
    ----------
    images, masks : path
        Folders of image files and label maps.
    labels : LabelSpec or mapping of str to int, optional
        Label names and values. Inferred from the values found in the masks when omitted
        (``background`` for 0, ``label_<v>`` otherwise); this reads every mask.
    channel_names : mapping of int to str, optional
        Channel names; by default ``{0: "image"}``, or ``channel_<i>`` for each channel of the
        first image when it has several.

    Raises
    ------
    DatasetError
        If a folder is missing or holds no image files, or two files share a name.
    """
    images, masks = Path(images), Path(masks)
    image_files = _by_case(images)
    mask_files = _by_case(masks)
    if not image_files:
        raise DatasetError(f"{images}: no image files found")
    cases = tuple(
        Case(
            case_id=case_id,
            image_paths=(image_files[case_id],) if case_id in image_files else (),
            label_path=mask_files.get(case_id),
        )
        for case_id in sorted(set(image_files) | set(mask_files))
    )
    return Dataset(
        root=images.parent,
        name=images.parent.name,
        cases=cases,
        labels=_label_spec(labels, cases),
        channel_names=_channel_names(channel_names, cases),
        file_ending=_common_ending(image_files.values()),
    )


def load_manifest(
    path: PathLikeStr,
    *,
    labels: LabelSpec | Mapping[str, int] | None = None,
    channel_names: Mapping[int, str] | None = None,
) -> Dataset:
    """Load a CSV manifest with columns ``case_id``, image column(s) and optional ``label``.

    Image columns are either a single ``image`` or ``image_0000``, ``image_0001``... (one per
    channel, in that order). Relative paths resolve against the CSV's folder, which is the
    dataset root. Rows with an empty or absent ``label`` become unlabelled test cases.

    Parameters
    ----------
    path : path
        The CSV file (UTF-8, header row).
    labels : LabelSpec or mapping of str to int, optional
        As in :func:`load_paired_folders`; inferred from the label files when omitted.
    channel_names : mapping of int to str, optional
        Defaults to the image column names.

    Raises
    ------
    DatasetError
        Missing columns, empty or duplicate case ids, empty image cells, or an "unsafe path":
        one that leaves the dataset root (absolute elsewhere, ``..``, a symlink pointing out).
    """
    path = Path(path)
    root = path.parent
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: not found") from err
    except (UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path}: not a readable CSV file ({err})") from err
    image_columns = _image_columns(columns, path)
    training: list[Case] = []
    test: list[Case] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        where = f"{path} line {number}"
        case_id = (row.get("case_id") or "").strip()
        if not case_id:
            raise DatasetError(f"{where}: empty case_id")
        if case_id in seen:
            raise DatasetError(f"{where}: duplicate case_id {case_id!r}")
        seen.add(case_id)
        image_paths = []
        for column in image_columns:
            cell = (row.get(column) or "").strip()
            if not cell:
                raise DatasetError(f"{where}: empty {column!r} for case {case_id!r}")
            image_paths.append(resolve_inside(root, cell, source=where))
        label_cell = (row.get("label") or "").strip()
        label = resolve_inside(root, label_cell, source=where) if label_cell else None
        case = Case(case_id=case_id, image_paths=tuple(image_paths), label_path=label)
        (training if label is not None else test).append(case)
    if not rows:
        raise DatasetError(f"{path}: no rows")
    cases = tuple(training)
    names = channel_names or dict(enumerate(image_columns))
    first_paths = [c.image_paths[0] for c in (*training, *test)]
    return Dataset(
        root=root,
        name=path.stem,
        cases=cases,
        labels=_label_spec(labels, cases),
        channel_names=dict(names),
        file_ending=_common_ending(first_paths),
        test_cases=tuple(test),
    )


def infer_labels(label_paths: Iterable[Path]) -> LabelSpec:
    """A :class:`LabelSpec` naming every integer value found in the label files.

    Unreadable files and non-integer values are skipped here (the dataset check reports them).
    """
    from medseg.io import read_image

    values: set[int] = {0}
    for path in label_paths:
        try:
            array = read_image(path).array
        except ImageReadError:
            continue
        unique = np.unique(array[np.isfinite(array)] if array.dtype.kind == "f" else array)
        values.update(int(v) for v in unique if float(v).is_integer())
    return LabelSpec(labels={("background" if v == 0 else f"label_{v}"): v for v in sorted(values)})


def _label_spec(labels: LabelSpec | Mapping[str, int] | None, cases: tuple[Case, ...]) -> LabelSpec:
    if isinstance(labels, LabelSpec):
        return labels
    if labels is not None:
        return parse_labels(dict(labels), source="labels argument")
    return infer_labels(c.label_path for c in cases if c.label_path is not None)


def _channel_names(names: Mapping[int, str] | None, cases: tuple[Case, ...]) -> dict[int, str]:
    if names is not None:
        return dict(names)
    from medseg.io import read_image

    for case in cases:
        if case.image_paths:
            try:
                count = read_image(case.image_paths[0]).num_channels
            except ImageReadError:
                continue
            return {0: "image"} if count == 1 else {i: f"channel_{i}" for i in range(count)}
    return {0: "image"}


def _by_case(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    found: dict[str, Path] = {}
    for path in visible_files(folder):
        parts = split_ending(path.name)
        if parts is None:
            continue
        case_id = parts[0]
        if case_id in found:
            raise DatasetError(
                f"{folder}: {found[case_id].name} and {path.name} both name case {case_id!r}"
            )
        found[case_id] = path
    return found


def _image_columns(columns: list[str], path: Path) -> list[str]:
    if "case_id" not in columns:
        raise DatasetError(f"{path}: needs a 'case_id' column (found {columns})")
    numbered = sorted((c for c in columns if _CHANNEL_COLUMN.match(c)), key=lambda c: c[6:])
    if "image" in columns and numbered:
        raise DatasetError(f"{path}: use either an 'image' column or image_0000, ..., not both")
    if "image" in columns:
        return ["image"]
    if not numbered:
        raise DatasetError(f"{path}: needs an 'image' column or image_0000, image_0001, ...")
    expected = [f"image_{i:04d}" for i in range(len(numbered))]
    if numbered != expected:
        raise DatasetError(f"{path}: image columns must be {expected}, found {numbered}")
    return numbered


def _common_ending(paths: Iterable[Path]) -> str:
    endings = Counter(parts[1].lower() for p in paths if (parts := split_ending(p.name)))
    return endings.most_common(1)[0][0] if endings else ".nii.gz"
