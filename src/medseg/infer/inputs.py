"""Find the cases to predict in what a user passes: files, folders, channel files, DICOM series.

Rules, for each input path:

- a **file** is one case; its ID is the file name without the suffix and without a trailing
  ``_0000`` channel index;
- a **folder holding a DICOM series** (every file is ``.dcm`` or starts with the DICOM magic
  ``DICM`` at byte 128) is one case named after the folder;
- any other **folder** is scanned (not recursively): image files in nnU-Net naming
  (``case_0000.nii.gz``, ``case_0001.nii.gz``) are grouped into one multi-channel case, other
  image files are single-channel cases, and DICOM series sub-folders are cases too. Files of
  other types (``dataset.json``, notes) are skipped.

Labels are written in the input's format; DICOM (and JPEG, which is lossy) inputs get NIfTI
(PNG) label maps, which :attr:`InputCase.note` says.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medseg._typing import PathLikeStr
from medseg.errors import DatasetError
from medseg.io.readers import READ_SUFFIXES, WRITE_SUFFIXES

logger = logging.getLogger(__name__)

_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<index>\d{4})$")


@dataclass(frozen=True)
class InputCase:
    """One case to predict.

    ``paths`` holds one file per channel in channel order, or a single DICOM series folder.
    ``suffix`` is the file ending of the label map to write; ``note`` explains a format change.
    """

    case_id: str
    paths: tuple[Path, ...]
    suffix: str
    note: str = ""


def find_inputs(inputs: PathLikeStr | Sequence[PathLikeStr]) -> list[InputCase]:
    """Cases in ``inputs`` (one path or several), sorted by case ID within each folder.

    A path that does not exist becomes a case of its own so that reading it fails for that
    case only. Two cases with the same ID raise :class:`DatasetError` (their outputs would
    overwrite each other).
    """
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(p) for p in inputs]
    cases: list[InputCase] = []
    for path in paths:
        if path.is_dir():
            cases.extend([_dicom_case(path)] if _is_dicom_folder(path) else _scan_folder(path))
        else:
            cases.append(_file_case(path))
    seen: dict[str, InputCase] = {}
    for case in cases:
        if case.case_id in seen:
            raise DatasetError(
                f"two inputs give case ID {case.case_id!r} ({seen[case.case_id].paths[0]} and "
                f"{case.paths[0]}); rename one so their outputs do not collide"
            )
        seen[case.case_id] = case
    return cases


def require_inputs(inputs: PathLikeStr | Sequence[PathLikeStr]) -> list[InputCase]:
    """:func:`find_inputs`, refusing inputs that hold no case (an empty or wrong folder).

    Raises
    ------
    DatasetError
        No image file, channel group or DICOM series was found in any of ``inputs``.
    """
    cases = find_inputs(inputs)
    if not cases:
        paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        where = ", ".join(str(p) for p in paths) or "(no input given)"
        raise DatasetError(
            f"{where}: no image to predict; give image files ({', '.join(READ_SUFFIXES[:4])}, "
            "...), folders holding them, or DICOM series folders"
        )
    return cases


def image_suffix(path: Path) -> str | None:
    """The readable image suffix of ``path`` (``".nii.gz"``...), or ``None``."""
    name = path.name.lower()
    return next((s for s in READ_SUFFIXES if name.endswith(s)), None)


def _file_case(path: Path) -> InputCase:
    suffix = image_suffix(path) or "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    match = _CHANNEL.match(stem)
    case_id = match["case"] if match and match["index"] == "0000" else stem
    return InputCase(case_id, (path,), *_output_suffix(suffix))


def _dicom_case(folder: Path) -> InputCase:
    return InputCase(
        folder.name, (folder,), ".nii.gz", "DICOM series input: label map written as NIfTI"
    )


def _scan_folder(folder: Path) -> list[InputCase]:
    groups: dict[str, dict[int, Path]] = {}
    singles: list[InputCase] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if _is_dicom_folder(entry):
                singles.append(_dicom_case(entry))
            continue
        suffix = image_suffix(entry)
        if suffix is None:
            logger.info("skipping %s: not an image file", entry)
            continue
        stem = entry.name[: len(entry.name) - len(suffix)]
        match = _CHANNEL.match(stem)
        if match:
            groups.setdefault(match["case"] + "\0" + suffix, {})[int(match["index"])] = entry
        else:
            singles.append(InputCase(stem, (entry,), *_output_suffix(suffix)))
    for key, channels in groups.items():
        case_id, suffix = key.split("\0")
        ordered = tuple(channels[i] for i in sorted(channels))
        singles.append(InputCase(case_id, ordered, *_output_suffix(suffix)))
    return sorted(singles, key=lambda c: c.case_id)


def _output_suffix(suffix: str) -> tuple[str, str]:
    if suffix in WRITE_SUFFIXES:
        return suffix, ""
    if suffix in (".jpg", ".jpeg"):
        return ".png", "JPEG input: label map written as PNG (lossless)"
    return ".nii.gz", f"{suffix or 'unknown'} input: label map written as NIfTI"


def _is_dicom_folder(folder: Path) -> bool:
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return bool(files) and all(
        p.name.lower().endswith(".dcm") or _has_dicom_magic(p) for p in files
    )


def _has_dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False
