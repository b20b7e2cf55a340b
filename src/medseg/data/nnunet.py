"""nnU-Net v2 raw datasets: read and write ``dataset.json``, discover ``imagesTr``/``labelsTr``.

Layout (see nnU-Net's ``documentation/dataset_format.md``)::

    DatasetXXX_Name/
        dataset.json
        imagesTr/{case}_{XXXX}{file_ending}    one file per channel, XXXX = 0000, 0001, ...
        labelsTr/{case}{file_ending}
        labelsTr/{case}_rater{k}{file_ending}  optional, one per observer (several raters)
        imagesTs/{case}_{XXXX}{file_ending}    optional, unlabelled (labelsTs/ is read if present)

``dataset.json`` needs ``channel_names``, ``labels``, ``numTraining`` and ``file_ending``. A label
whose value is a list is a region (BraTS style); regions then need ``regions_class_order``. A
label named ``ignore`` is the ignore label and must have the highest value. An optional
``dataset`` key lists files explicitly: ``{case: {"images": [...], "label": ...}}``.

The loader is lenient about what is on disk (a case without label, a label without image, a
missing channel): it records what it finds and :func:`medseg.data.check_dataset` reports it. It
is strict about ``dataset.json`` itself.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medseg._atomic import write_text_atomic
from medseg._typing import PathLikeStr
from medseg.data._paths import resolve_inside, visible_files
from medseg.data.dataset import Case, Dataset, LabelSpec
from medseg.errors import DatasetError

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")


def load_nnunet(root: PathLikeStr) -> Dataset:
    """Load an nnU-Net v2 raw dataset folder.

    Parameters
    ----------
    root : path
        Folder holding ``dataset.json`` and ``imagesTr/`` (``labelsTr/``, ``imagesTs/`` optional).

    Returns
    -------
    Dataset
        Training cases from ``imagesTr``/``labelsTr`` (the union of both, so that unpaired files
        show up in the check) and test cases from ``imagesTs``.

    Raises
    ------
    DatasetError
        If ``dataset.json`` is missing, malformed, lacks a required key or has invalid values, or
        if ``imagesTr`` is missing.
    """
    root = Path(root)
    json_path = root / "dataset.json"
    meta = read_dataset_json(json_path)
    file_ending = meta["file_ending"]
    labels = parse_labels(meta["labels"], meta.get("regions_class_order"), source=str(json_path))
    channel_names = _parse_channel_names(meta["channel_names"], source=str(json_path))
    if "dataset" in meta:
        cases = _explicit_cases(root, meta["dataset"], source=str(json_path))
        test_cases: tuple[Case, ...] = ()
    else:
        images_tr = root / "imagesTr"
        if not images_tr.is_dir():
            raise DatasetError(f"{root}: no imagesTr/ folder; is this an nnU-Net raw dataset?")
        cases = _scan(images_tr, root / "labelsTr", file_ending)
        images_ts = root / "imagesTs"
        test_cases = _scan(images_ts, root / "labelsTs", file_ending) if images_ts.is_dir() else ()
    return Dataset(
        root=root,
        name=str(meta.get("name") or root.name),
        cases=cases,
        labels=labels,
        channel_names=channel_names,
        file_ending=file_ending,
        test_cases=test_cases,
        declared_num_training=meta["numTraining"],
    )


def read_dataset_json(path: PathLikeStr) -> dict[str, Any]:
    """Read and validate the top-level keys of an nnU-Net ``dataset.json``.

    Raises
    ------
    DatasetError
        Missing file, invalid JSON, a missing required key, or a key of the wrong type.
    """
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: not found; an nnU-Net dataset needs a dataset.json") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: expected a JSON object at the top level")
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise DatasetError(
            f"{path}: missing required key(s) {', '.join(missing)} "
            f"(nnU-Net v2 needs {', '.join(REQUIRED_KEYS)})"
        )
    ending = meta["file_ending"]
    if not isinstance(ending, str) or not ending.startswith(".") or len(ending) < 2:
        raise DatasetError(f"{path}: file_ending must be a string like '.nii.gz', got {ending!r}")
    num = meta["numTraining"]
    if isinstance(num, bool) or not isinstance(num, int) or num < 0:
        raise DatasetError(f"{path}: numTraining must be a non-negative integer, got {num!r}")
    return meta


def parse_labels(
    labels: Any, regions_class_order: Any = None, *, source: str = "dataset.json"
) -> LabelSpec:
    """Turn the ``labels`` entry of ``dataset.json`` into a :class:`LabelSpec`.

    Integer entries are labels. If any entry is a list, the dataset is region based: every
    entry except ``background`` and ``ignore`` becomes a region (an integer is a one-value
    region) and ``regions_class_order`` must give one label value per region.

    Raises
    ------
    DatasetError
        No ``background`` = 0, a value that is neither an integer nor a list of integers,
        duplicate or non-consecutive label values, an ``ignore`` that is not the highest value,
        or a missing/mismatched ``regions_class_order``.
    """
    if not isinstance(labels, dict) or not labels:
        raise DatasetError(f"{source}: 'labels' must be a non-empty object of name -> value")
    for name, value in labels.items():
        if not (_is_int(value) or (isinstance(value, list) and value and all(map(_is_int, value)))):
            raise DatasetError(
                f"{source}: label {name!r} has value {value!r}; use an integer, or a list of "
                "integers for a region"
            )
    if labels.get("background") != 0:
        raise DatasetError(f'{source}: labels must contain "background": 0')
    ints = {name: value for name, value in labels.items() if _is_int(value)}
    ignore = ints.get("ignore")
    uses_regions = any(isinstance(v, list) for v in labels.values())
    if ignore is not None:
        others = [v for n, v in labels.items() if n != "ignore"]
        highest = max(max(v) if isinstance(v, list) else v for v in others)
        if ignore <= highest:
            raise DatasetError(
                f"{source}: the ignore label ({ignore}) must have the highest value (> {highest})"
            )
    if not uses_regions:
        values = sorted(ints.values())
        if len(set(values)) != len(values):
            raise DatasetError(f"{source}: duplicate label values {values}")
        if values != list(range(len(values))):
            raise DatasetError(
                f"{source}: label values must be consecutive integers from 0, got {values}"
            )
        return LabelSpec(labels=ints, ignore=ignore)
    regions = {
        name: tuple(value) if isinstance(value, list) else (value,)
        for name, value in labels.items()
        if name not in ("background", "ignore")
    }
    if not isinstance(regions_class_order, list) or not all(map(_is_int, regions_class_order)):
        raise DatasetError(
            f"{source}: region-based labels need 'regions_class_order', a list of one label "
            f"value per region ({len(regions)} regions)"
        )
    if len(regions_class_order) != len(regions):
        raise DatasetError(
            f"{source}: regions_class_order has {len(regions_class_order)} entries but there "
            f"are {len(regions)} regions"
        )
    return LabelSpec(
        labels=ints, regions=regions, region_order=tuple(regions_class_order), ignore=ignore
    )


def labels_to_json(labels: LabelSpec) -> dict[str, int | list[int]]:
    """The ``labels`` entry of ``dataset.json`` for a :class:`LabelSpec` (inverse of parsing)."""
    if not labels.uses_regions:
        return dict(sorted(labels.labels.items(), key=lambda item: item[1]))
    out: dict[str, int | list[int]] = {"background": 0}
    for name, members in labels.regions.items():
        single = len(members) == 1 and labels.labels.get(name) == members[0]
        out[name] = members[0] if single else list(members)
    if labels.ignore is not None:
        out["ignore"] = labels.ignore
    return out


def write_dataset_json(
    root: PathLikeStr,
    *,
    channel_names: Mapping[int, str],
    labels: LabelSpec | Mapping[str, int | Sequence[int]],
    num_training: int,
    file_ending: str,
    name: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``root/dataset.json`` in nnU-Net v2 format, atomically.

    Parameters
    ----------
    root : path
        Dataset folder (created if missing).
    channel_names : mapping of int to str
        Channel index -> modality name, e.g. ``{0: "T1"}``.
    labels : LabelSpec or mapping
        Label name -> value (a list for a region). A :class:`LabelSpec` with regions also
        writes ``regions_class_order``.
    num_training : int
        Number of training cases.
    file_ending : str
        Image file ending, e.g. ``".nii.gz"``.
    name : str, optional
        Dataset name.
    extra : mapping, optional
        Further keys (``description``, ``reference``, ``licence``...).

    Returns
    -------
    Path
        The written file. It is read back with the same validation as :func:`load_nnunet`.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "dataset.json"
    if isinstance(labels, LabelSpec):
        label_json: dict[str, Any] = dict(labels_to_json(labels))
        order = list(labels.region_order) if labels.uses_regions else None
    else:
        label_json = {k: list(v) if isinstance(v, Sequence) else v for k, v in labels.items()}
        order = None
    meta: dict[str, Any] = {}
    if name is not None:
        meta["name"] = name
    meta.update(extra or {})
    meta.update(
        channel_names={str(k): v for k, v in sorted(channel_names.items())},
        labels=label_json,
        numTraining=int(num_training),
        file_ending=file_ending,
    )
    if order is not None:
        meta["regions_class_order"] = order
    parse_labels(label_json, meta.get("regions_class_order"), source=str(path))
    _parse_channel_names(meta["channel_names"], source=str(path))
    write_text_atomic(json.dumps(meta, indent=2) + "\n", path)
    return path


def update_dataset_json(root: PathLikeStr, changes: Mapping[str, Any]) -> Path:
    """Set top-level keys of ``root/dataset.json`` (the others kept), atomically.

    Used for the declarations the weak-label tools add to a written dataset
    (``annotated_classes``, ``every_object_marked``, ``weak_labels``).
    """
    path = Path(root) / "dataset.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.update(changes)
    write_text_atomic(json.dumps(meta, indent=2) + "\n", path)
    return path


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_channel_names(channels: Any, *, source: str) -> dict[int, str]:
    if not isinstance(channels, dict) or not channels:
        raise DatasetError(
            f'{source}: \'channel_names\' must be a non-empty object like {{"0": "CT"}}'
        )
    out: dict[int, str] = {}
    for key, value in channels.items():
        if not str(key).isdigit() or not isinstance(value, str):
            raise DatasetError(
                f"{source}: channel_names entry {key!r}: {value!r} must map a channel index "
                '("0", "1", ...) to a name'
            )
        out[int(key)] = value
    if sorted(out) != list(range(len(out))):
        raise DatasetError(
            f"{source}: channel_names keys must be 0..{len(out) - 1}, got {sorted(out)}"
        )
    return dict(sorted(out.items()))


RATER_FILE = re.compile(r"^(?P<case>.+)_rater(?P<rater>\d+)$")
"""Stem of a label file of one rater, ``{case}_rater{k}``, when several observers annotated."""


def scan_images(folder: PathLikeStr, file_ending: str) -> tuple[Case, ...]:
    """Cases without labels from a folder of ``{case}_{XXXX}{file_ending}`` images.

    Raises
    ------
    DatasetError
        If the folder does not exist or holds no image so named.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder of images")
    cases = _scan(folder, None, file_ending)
    if not cases:
        raise DatasetError(
            f"{folder}: no images named {{case}}_{{XXXX}}{file_ending} (e.g. case_001_0000"
            f"{file_ending})"
        )
    return cases


def _scan(images: Path, labels: Path | None, file_ending: str) -> tuple[Case, ...]:
    """Group ``{case}_{XXXX}{ending}`` files by case and attach ``{case}{ending}`` labels.

    Label files ``{case}_rater{k}{ending}`` of a case with images are its raters' labels.
    """
    pattern = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})" + re.escape(file_ending) + "$")
    channels: dict[str, list[tuple[int, Path]]] = {}
    for path in visible_files(images):
        match = pattern.match(path.name)
        if match is None:
            if path.name.endswith(file_ending):
                logger.warning("%s: not named {case}_{XXXX}%s; skipped", path, file_ending)
            continue
        channels.setdefault(match["case"], []).append((int(match["channel"]), path))
    label_files: dict[str, Path] = {}
    raters: dict[str, list[tuple[int, Path]]] = {}
    if labels is not None and labels.is_dir():
        for path in visible_files(labels):
            if path.name.endswith(file_ending) and len(path.name) > len(file_ending):
                stem = path.name[: -len(file_ending)]
                rater = RATER_FILE.match(stem)
                if rater is not None and rater["case"] in channels:
                    raters.setdefault(rater["case"], []).append((int(rater["rater"]), path))
                else:
                    label_files[stem] = path
    return tuple(
        Case(
            case_id=case_id,
            image_paths=tuple(p for _, p in sorted(channels.get(case_id, []))),
            label_path=label_files.get(case_id),
            rater_paths=tuple(p for _, p in sorted(raters.get(case_id, []))),
        )
        for case_id in sorted(set(channels) | set(label_files))
    )


def _explicit_cases(root: Path, entries: Any, *, source: str) -> tuple[Case, ...]:
    """Cases from the optional ``dataset`` key: ``{case: {"images": [...], "label": ...}}``."""
    if not isinstance(entries, dict):
        raise DatasetError(f"{source}: 'dataset' must map case ids to {{images, label}}")
    cases = []
    for case_id, entry in sorted(entries.items()):
        images = entry.get("images") if isinstance(entry, dict) else None
        if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
            raise DatasetError(f"{source}: dataset[{case_id!r}] needs 'images': [paths]")
        where = f"{source} dataset[{case_id!r}]"
        label = entry.get("label")
        cases.append(
            Case(
                case_id=case_id,
                image_paths=tuple(resolve_inside(root, p, source=where) for p in images),
                label_path=None if label is None else resolve_inside(root, label, source=where),
            )
        )
    return tuple(cases)
