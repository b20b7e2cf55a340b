"""Case table: reading, errors, metadata encoding on hand cases, target classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg._config import from_jsonable, to_jsonable
from medseg.data.case_table import (
    MetadataEncoding,
    case_classes,
    fit_metadata,
    parse_field_spec,
    read_case_table,
)
from medseg.errors import DatasetError


def _table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cases.csv"
    path.write_text(text)
    return path


HAND = "case,age,sex,grade\na,40,F,low\nb,60,M,high\nc,,F,low\nd,50,NA,high\n"


def test_read_missing_values_and_columns(tmp_path: Path) -> None:
    table = read_case_table(_table(tmp_path, HAND))
    assert table.columns == ("age", "sex", "grade")
    assert table.value("c", "age") is None
    assert table.value("d", "sex") is None
    assert table.value("b", "sex") == "M"


def test_encoding_on_hand_cases(tmp_path: Path) -> None:
    table = read_case_table(_table(tmp_path, HAND))
    enc = fit_metadata(table, ["age", "sex"], ["a", "b", "c", "d"])
    age, sex = enc.fields
    assert age.kind == "numeric"
    assert sex.kind == "categorical"
    # mean and (population) std of 40, 60, 50: the missing value is left out
    assert age.mean == pytest.approx(50.0)
    assert age.std == pytest.approx(np.std([40, 60, 50]))
    assert sex.categories == ("F", "M")
    assert enc.column_names() == ["age", "age?missing", "sex=F", "sex=M", "sex?missing"]
    z = 10 / np.std([40, 60, 50])
    expected = np.array(
        [
            [-z, 0, 1, 0, 0],
            [z, 0, 0, 1, 0],
            [0, 1, 1, 0, 0],  # age missing
            [0, 0, 0, 0, 1],  # sex missing
        ],
        dtype=np.float32,
    )
    np.testing.assert_allclose(enc.encode_cases(table, ["a", "b", "c", "d"]), expected, rtol=1e-6)
    # an unseen category counts as missing
    np.testing.assert_array_equal(sex.encode("X"), [0, 0, 1])
    again = from_jsonable(MetadataEncoding, to_jsonable(enc))
    assert again == enc


def test_declared_kinds(tmp_path: Path) -> None:
    table = read_case_table(_table(tmp_path, "case,code\na,0\nb,1\nc,1\n"))
    assert fit_metadata(table, ["code"], ["a", "b", "c"]).fields[0].kind == "numeric"
    enc = fit_metadata(table, ["code:cat"], ["a", "b", "c"])
    assert enc.fields[0].categories == ("0", "1")
    assert parse_field_spec("age:num") == ("age", "numeric")
    with pytest.raises(DatasetError, match="NAME:num"):
        parse_field_spec("age:int")


def test_non_numeric_in_numeric_field(tmp_path: Path) -> None:
    table = read_case_table(_table(tmp_path, "case,age\na,40\nb,old\n"))
    with pytest.raises(DatasetError, match=r"numeric but case 'b' has 'old'"):
        fit_metadata(table, ["age:num"], ["a", "b"])


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="case table not found"):
        read_case_table(tmp_path / "nope.csv")
    with pytest.raises(DatasetError, match="no 'case' column"):
        read_case_table(_table(tmp_path, "id,age\na,1\n"))
    with pytest.raises(DatasetError, match="appears twice"):
        read_case_table(_table(tmp_path, "case,age\na,1\na,2\n"))
    table = read_case_table(_table(tmp_path, HAND))
    with pytest.raises(DatasetError, match="no column 'weight'"):
        fit_metadata(table, ["weight"], ["a"])
    with pytest.raises(DatasetError, match="no row for case"):
        fit_metadata(table, ["age"], ["a", "zz"])


def test_target_classes(tmp_path: Path) -> None:
    table = read_case_table(_table(tmp_path, HAND))
    classes, targets = case_classes(table, "grade", ["a", "b", "c", "d"])
    assert classes == ("high", "low")
    assert targets == {"a": 1, "b": 0, "c": 1, "d": 0}
    numeric = read_case_table(_table(tmp_path, "case,y\na,10\nb,9\nc,10\nd,9\n"))
    assert case_classes(numeric, "y", ["a", "b", "c", "d"])[0] == ("9", "10")


def test_target_errors(tmp_path: Path) -> None:
    table = read_case_table(_table(tmp_path, HAND))
    with pytest.raises(DatasetError, match="too few cases per class"):
        case_classes(table, "grade", ["a", "b", "c"])
    with pytest.raises(DatasetError, match="at least 2 classes"):
        case_classes(table, "grade", ["a", "c"])
    with pytest.raises(DatasetError, match="have no value of 'age'"):
        case_classes(table, "age", ["a", "c"])
