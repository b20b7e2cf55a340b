"""Per-case fields (age, sex, diagnosis...) from a CSV case table, and their encoding for a network.

The case table is a CSV file with a header row and one row per case: a ``case`` column holding
the case ids (as in ``imagesTr``: ``case_001`` for ``case_001_0000.nii.gz``) and any other
columns. ``cases.csv`` in the dataset folder is found by default. Cells that are empty or read
``NA``, ``N/A``, ``nan``, ``null`` or ``none`` (any case) are missing values.

A column is *numeric* when every value present parses as a number, *categorical* otherwise;
``name:num`` or ``name:cat`` declares the kind (a numeric code such as ``0``/``1`` for sex can be
declared categorical). :func:`fit_metadata` learns an encoding from training cases: numeric
fields are standardised with the training cases' mean and standard deviation, categorical
fields become one-hot vectors over the categories seen in training, and every field adds a
missing-value indicator (1 where the value is missing; the field's other columns are then 0).
An unseen category at prediction time is encoded as missing.

The classification target (``medseg train --classify FIELD``) is categorical: its classes are
the distinct values over the labelled cases (numbers sorted by value, text alphabetically).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from medseg._typing import PathLikeStr
from medseg.errors import DatasetError

CASE_TABLE_NAME = "cases.csv"
"""Default case table, in the dataset folder."""
CASE_COLUMN = "case"
MISSING_VALUES = frozenset({"", "na", "n/a", "nan", "null", "none"})
MIN_CASES_PER_CLASS = 2
"""Fewest labelled cases per target class (one for training and one for validation, at least)."""

FieldKind = Literal["numeric", "categorical"]
_KIND_SUFFIX = {"num": "numeric", "cat": "categorical"}


@dataclass(frozen=True)
class CaseTable:
    """A read case table.

    Attributes
    ----------
    path : Path
        The CSV file (named in errors).
    columns : tuple of str
        Field names, without ``case``, in file order.
    rows : dict of str to dict of str to str or None
        Case id -> field -> value (``None`` when missing).
    """

    path: Path
    columns: tuple[str, ...]
    rows: dict[str, dict[str, str | None]]

    def value(self, case_id: str, field: str) -> str | None:
        """The value of ``field`` for ``case_id`` (``None`` when missing)."""
        return self.rows[case_id][field]

    def require_fields(self, fields: Iterable[str]) -> None:
        """Raise DatasetError naming the first field that is not a column."""
        for field in fields:
            if field not in self.columns:
                raise DatasetError(
                    f"{self.path}: no column {field!r} (columns: {', '.join(self.columns)}); "
                    "fix the field name or add the column"
                )

    def require_cases(self, case_ids: Iterable[str]) -> None:
        """Raise DatasetError listing cases that have no row."""
        missing = [c for c in case_ids if c not in self.rows]
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise DatasetError(
                f"{self.path}: no row for case(s) {shown}; add one row per case "
                f"(column {CASE_COLUMN!r}, ids as in imagesTr)"
            )


def read_case_table(path: PathLikeStr) -> CaseTable:
    """Read a case table (see the module docstring).

    Raises
    ------
    DatasetError
        File missing or unreadable, no ``case`` column, an empty or repeated case id, no rows.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            records = [list(row.values()) for row in reader]
    except FileNotFoundError as err:
        raise DatasetError(
            f"{path}: case table not found; write a CSV with a {CASE_COLUMN!r} column and one "
            "row per case, or pass --case-table FILE"
        ) from err
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path}: cannot read the case table ({err})") from err
    if CASE_COLUMN not in header:
        raise DatasetError(
            f"{path}: the header has no {CASE_COLUMN!r} column (found: {', '.join(header)}); "
            "name the column of case ids 'case'"
        )
    rows: dict[str, dict[str, str | None]] = {}
    for line, values in enumerate(records, start=2):
        if len(values) != len(header) or any(v is None for v in values):
            raise DatasetError(f"{path}, line {line}: {len(header)} columns expected")
        record = {name: _cell(str(v)) for name, v in zip(header, values, strict=True)}
        case_id = record.pop(CASE_COLUMN)
        if case_id is None:
            raise DatasetError(f"{path}, line {line}: the case id is empty")
        if case_id in rows:
            raise DatasetError(f"{path}, line {line}: case {case_id!r} appears twice")
        rows[case_id] = record
    if not rows:
        raise DatasetError(f"{path}: the case table has no rows")
    return CaseTable(path=path, columns=tuple(h for h in header if h != CASE_COLUMN), rows=rows)


def _cell(text: str) -> str | None:
    text = text.strip()
    return None if text.lower() in MISSING_VALUES else text


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_field_spec(spec: str) -> tuple[str, FieldKind | None]:
    """``"age"`` -> ``("age", None)``; ``"age:num"`` / ``"sex:cat"`` declare the kind.

    Raises
    ------
    DatasetError
        An empty name or an unknown kind suffix.
    """
    name, _, suffix = spec.strip().partition(":")
    if not name or (suffix and suffix not in _KIND_SUFFIX):
        raise DatasetError(
            f"metadata field {spec!r}: write NAME, NAME:num (numeric) or NAME:cat (categorical)"
        )
    kind: FieldKind | None = _KIND_SUFFIX[suffix] if suffix else None  # type: ignore[assignment]
    return name.strip(), kind


@dataclass(frozen=True, kw_only=True)
class EncodedField:
    """How one metadata field becomes network inputs.

    Attributes
    ----------
    name : str
    kind : {"numeric", "categorical"}
    mean, std : float
        Standardisation of a numeric field (training cases); 0 and 1 for categorical ones.
    categories : tuple of str
        One-hot columns of a categorical field, in order (empty for numeric fields).
    """

    name: str
    kind: FieldKind
    mean: float = 0.0
    std: float = 1.0
    categories: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        """Input columns: the value (or one per category), then the missing indicator."""
        return (1 if self.kind == "numeric" else len(self.categories)) + 1

    def encode(self, value: str | None) -> list[float]:
        """The field's columns for one raw value (``None``: missing)."""
        columns = [0.0] * self.width
        if self.kind == "numeric":
            number = None if value is None else _number(value)
            if number is None:
                columns[-1] = 1.0
            else:
                columns[0] = (number - self.mean) / self.std
        elif value in self.categories:
            columns[self.categories.index(value)] = 1.0
        else:
            columns[-1] = 1.0
        return columns

    def column_names(self) -> list[str]:
        """Names of the field's columns (``age``, ``sex=F``, ``age?missing``...)."""
        values = (
            [self.name] if self.kind == "numeric" else [f"{self.name}={c}" for c in self.categories]
        )
        return [*values, f"{self.name}?missing"]


@dataclass(frozen=True, kw_only=True)
class MetadataEncoding:
    """The encoding of several metadata fields, fitted on training cases (JSON round trip)."""

    fields: tuple[EncodedField, ...] = ()

    @property
    def width(self) -> int:
        """Length of an encoded vector."""
        return sum(f.width for f in self.fields)

    def column_names(self) -> list[str]:
        return [name for f in self.fields for name in f.column_names()]

    def encode(self, values: Mapping[str, str | None]) -> npt.NDArray[np.float32]:
        """One case's vector, shape ``(width,)``; absent keys count as missing."""
        return np.array(
            [x for f in self.fields for x in f.encode(values.get(f.name))], dtype=np.float32
        )

    def encode_cases(self, table: CaseTable, case_ids: Sequence[str]) -> npt.NDArray[np.float32]:
        """Vectors of ``case_ids``, shape ``(len(case_ids), width)``."""
        table.require_cases(case_ids)
        rows = [self.encode(table.rows[c]) for c in case_ids]
        return np.stack(rows) if rows else np.zeros((0, self.width), np.float32)


def fit_metadata(
    table: CaseTable, specs: Sequence[str], case_ids: Sequence[str]
) -> MetadataEncoding:
    """Learn the encoding of ``specs`` (``name`` or ``name:num``/``name:cat``) on ``case_ids``.

    Raises
    ------
    DatasetError
        Unknown field, a case without a row, a non-numeric value in a field declared numeric.
    """
    parsed = [parse_field_spec(s) for s in specs]
    table.require_fields(name for name, _ in parsed)
    table.require_cases(case_ids)
    fields = []
    for name, declared in parsed:
        present = {c: v for c in case_ids if (v := table.value(c, name)) is not None}
        numbers = {c: _number(v) for c, v in present.items()}
        kind = declared or (
            "numeric" if all(n is not None for n in numbers.values()) else "categorical"
        )
        if kind == "numeric":
            bad = [(c, present[c]) for c, n in numbers.items() if n is None]
            if bad:
                raise DatasetError(
                    f"{table.path}: field {name!r} is numeric but case {bad[0][0]!r} has "
                    f"{bad[0][1]!r}; fix the value or declare the field categorical ({name}:cat)"
                )
            values = np.array(list(numbers.values()), dtype=np.float64)
            mean = float(values.mean()) if values.size else 0.0
            std = float(values.std()) if values.size > 1 else 0.0
            fields.append(EncodedField(name=name, kind="numeric", mean=mean, std=std or 1.0))
        else:
            categories = tuple(sorted(set(present.values()), key=_class_key))
            fields.append(EncodedField(name=name, kind="categorical", categories=categories))
    return MetadataEncoding(fields=tuple(fields))


def _class_key(value: str) -> tuple[int, float, str]:
    number = _number(value)
    return (0, number, value) if number is not None else (1, 0.0, value)


def case_classes(
    table: CaseTable,
    field: str,
    case_ids: Sequence[str],
    *,
    min_per_class: int = MIN_CASES_PER_CLASS,
) -> tuple[tuple[str, ...], dict[str, int]]:
    """The classes of the target ``field`` and each case's class index.

    Parameters
    ----------
    table : CaseTable
    field : str
        The column to predict.
    case_ids : sequence of str
        The labelled cases (every one needs a value).
    min_per_class : int
        Fewest cases each class needs.

    Returns
    -------
    classes : tuple of str
        Sorted: numbers by value, then text alphabetically.
    targets : dict of str to int
        Case id -> index into ``classes``.

    Raises
    ------
    DatasetError
        Unknown field, a case without a row or a value, fewer than 2 classes, or a class with
        fewer than ``min_per_class`` cases.
    """
    table.require_fields([field])
    table.require_cases(case_ids)
    unlabelled = [c for c in case_ids if table.value(c, field) is None]
    if unlabelled:
        raise DatasetError(
            f"{table.path}: case(s) {', '.join(unlabelled[:5])} have no value of {field!r}; "
            "every training case needs one"
        )
    values = {c: str(table.value(c, field)) for c in case_ids}
    classes = tuple(sorted(set(values.values()), key=_class_key))
    counts = {k: sum(v == k for v in values.values()) for k in classes}
    if len(classes) < 2:
        raise DatasetError(
            f"{table.path}: field {field!r} has one value ({classes[0] if classes else 'none'}) "
            "over the training cases; a classifier needs at least 2 classes"
        )
    few = {k: n for k, n in counts.items() if n < min_per_class}
    if few:
        shown = ", ".join(f"{k!r}: {n}" for k, n in few.items())
        raise DatasetError(
            f"{table.path}: field {field!r} has too few cases per class ({shown}); each class "
            f"needs at least {min_per_class} labelled cases"
        )
    return classes, {c: classes.index(v) for c, v in values.items()}
