"""Dataset validation: every problem with its case, file and severity.

The checks follow nnU-Net's ``verify_dataset_integrity`` and add a few of their own:

========================================  ========
check                                     severity
========================================  ========
no cases, ``numTraining`` mismatch        error
image without label, label without image  error
unreadable image or label file            error
channel count differs from the dataset    error
channels of one case on different grids   error
NaN or infinite image voxels              error
label shape/spacing/origin/direction      error
label with several channels               error
non-integer label values                  error
label values not declared                 error
label holds background only               warning
========================================  ========
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from medseg.data.dataset import Case, Dataset
from medseg.errors import DatasetError, MedsegError
from medseg.io import Image, geometry_differences, read_image

Severity = Literal["error", "warning"]


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One finding. ``file`` is relative to the dataset root when inside it; ``case_id`` and
    ``file`` are empty strings for dataset-wide problems."""

    case_id: str
    file: str
    severity: Severity
    message: str


@dataclass(frozen=True, kw_only=True)
class ValidationReport:
    """Result of :func:`check_dataset`: the problems in case order."""

    dataset: str
    num_cases: int
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    def summary(self) -> str:
        """One line, e.g. ``"12 cases, 0 errors, 1 warning"``."""
        return (
            f"{_plural(self.num_cases, 'case')}, {_plural(len(self.errors), 'error')}, "
            f"{_plural(len(self.warnings), 'warning')}"
        )

    def raise_for_errors(self) -> None:
        """Raise :class:`DatasetError` quoting the first error, if there is any."""
        if self.errors:
            first = self.errors[0]
            where = f"{first.file}: " if first.file else ""
            if first.case_id:
                where = f"case {first.case_id}, {where}"
            raise DatasetError(
                f"{self.dataset}: {self.summary()}; first: {where}{first.message} "
                "(run `medseg check` for the full list)"
            )

    def table(self):  # type: ignore[no-untyped-def]
        """A Rich table with one row per problem."""
        from rich.table import Table

        table = Table(title=f"{self.dataset}: {self.summary()}")
        for column in ("case", "severity", "file", "problem"):
            table.add_column(column, overflow="fold")
        for p in self.problems:
            style = "red" if p.severity == "error" else "yellow"
            table.add_row(p.case_id or "-", f"[{style}]{p.severity}[/]", p.file or "-", p.message)
        return table


def check_dataset(
    dataset: Dataset,
    *,
    geometry_atol: float = 1e-3,
    on_progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> ValidationReport:
    """Read every case of ``dataset`` and report what is wrong with it.

    Parameters
    ----------
    dataset : Dataset
        Training cases (which need a label) and test cases (label optional) are checked.
    geometry_atol : float
        Tolerance for spacing and origin (mm) and direction cosines (unitless) when comparing
        a label with its image and channels with each other.
    on_progress : callable, optional
        Called as ``on_progress(done, total)`` after each case.
    workers : int, optional
        Threads reading cases in parallel; default ``min(4, cpu count)``. Reading and the
        NumPy checks release the GIL, so threads suffice.

    Returns
    -------
    ValidationReport
        Problems in case order, dataset-wide problems first.
    """
    problems: list[Problem] = []
    if not dataset.cases and not dataset.test_cases:
        problems.append(_dataset_problem("no cases found"))
    declared = dataset.declared_num_training
    if declared is not None and declared != len(dataset.cases):
        problems.append(
            _dataset_problem(
                f"dataset.json numTraining is {declared} but {len(dataset.cases)} training "
                "cases were found"
            )
        )
    jobs = [(case, True) for case in dataset.cases] + [(case, False) for case in dataset.test_cases]
    results: list[list[Problem]] = [[] for _ in jobs]
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {
            pool.submit(_check_case, case, dataset, geometry_atol, needs_label): i
            for i, (case, needs_label) in enumerate(jobs)
        }
        for done, future in enumerate(as_completed(futures), start=1):
            results[futures[future]] = future.result()
            if on_progress is not None:
                on_progress(done, len(jobs))
    for case_problems in results:
        problems.extend(case_problems)
    return ValidationReport(dataset=dataset.name, num_cases=len(jobs), problems=tuple(problems))


def _check_case(case: Case, dataset: Dataset, atol: float, needs_label: bool) -> list[Problem]:
    problems: list[Problem] = []

    def add(severity: Severity, message: str, file: Path | str = "") -> None:
        shown = _relative(Path(file), dataset.root) if file else ""
        message = message.replace(f"{file}: ", "") if file else message
        problems.append(
            Problem(case_id=case.case_id, file=shown, severity=severity, message=message)
        )

    if not case.image_paths:
        add("error", "label without image", case.label_path or "")
    elif case.label_path is None and needs_label:
        add("error", "image without label", case.image_paths[0])
    channels: list[tuple[Path, Image]] = []
    for path in case.image_paths:
        try:
            channels.append((path, read_image(path)))
        except MedsegError as err:
            add("error", f"unreadable image: {err}", path)
    for path, image in channels:
        bad = _non_finite(image.array)
        if bad:
            add("error", f"image has {bad}", path)
    if channels:
        first_path, first = channels[0]
        for path, image in channels[1:]:
            differences = geometry_differences(first, image, atol=atol)
            if differences:
                add(
                    "error",
                    f"channel geometry differs from {first_path.name}: " + "; ".join(differences),
                    path,
                )
        if len(channels) == len(case.image_paths):
            count = sum(image.num_channels for _, image in channels)
            if count != dataset.num_channels:
                add(
                    "error",
                    f"inconsistent channel count: {count} channel(s), the dataset "
                    f"declares {dataset.num_channels}",
                    first_path,
                )
    if case.label_path is not None:
        try:
            label = read_image(case.label_path)
        except MedsegError as err:
            add("error", f"unreadable label: {err}", case.label_path)
        else:
            for severity, message in _label_problems(label, channels, dataset, atol):
                add(severity, message, case.label_path)
    return problems


def _label_problems(
    label: Image, channels: list[tuple[Path, Image]], dataset: Dataset, atol: float
) -> list[tuple[Severity, str]]:
    found: list[tuple[Severity, str]] = []
    if label.num_channels != 1:
        found.append(("error", f"label has {label.num_channels} channels, expected 1"))
    if channels:
        differences = geometry_differences(channels[0][1], label, atol=atol)
        if differences:
            found.append(
                ("error", f"label geometry differs from its image: {'; '.join(differences)}")
            )
    array = label.array
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all() or not np.array_equal(array[finite], np.round(array[finite])):
            fractional = array[finite][array[finite] != np.round(array[finite])]
            example = f"e.g. {fractional.flat[0]:.4g}" if fractional.size else "NaN/inf"
            found.append(("error", f"non-integer label values ({example})"))
            return found
    elif array.dtype.kind not in "iub":
        found.append(("error", f"label dtype {array.dtype} is not numeric"))
        return found
    values = _values(array)
    unknown = sorted(values - dataset.labels.allowed_values)
    if unknown:
        allowed = sorted(dataset.labels.allowed_values)
        found.append(
            ("error", f"label values {unknown} not declared in the dataset labels {allowed}")
        )
    background = {0} if dataset.labels.ignore is None else {0, dataset.labels.ignore}
    if values <= background:
        found.append(("warning", "empty label: background only"))
    return found


def _values(array: np.ndarray) -> set[int]:
    """Distinct integer values; ``bincount`` for small non-negative integers, else ``unique``."""
    small = array.size and array.dtype.kind in "uib" and array.min() >= 0 and array.max() < 65536
    if small:
        return {int(v) for v in np.flatnonzero(np.bincount(array.ravel().astype(np.intp)))}
    return {int(v) for v in np.unique(array)}


def _non_finite(array: np.ndarray) -> str:
    if array.dtype.kind not in "fc":
        return ""
    nans = int(np.isnan(array).sum())
    infs = int(np.isinf(array).sum())
    parts = [f"{nans} NaN" if nans else "", f"{infs} infinite" if infs else ""]
    text = " and ".join(p for p in parts if p)
    return f"{text} voxel(s)" if text else ""


def _dataset_problem(message: str) -> Problem:
    return Problem(case_id="", file="", severity="error", message=message)


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to the dataset root when it lies inside, else as given."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
