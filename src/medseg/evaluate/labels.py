"""Which classes to score: from options, an nnU-Net ``dataset.json``, or the data itself.

A class is a name and a tuple of label values: one value for a label, several for a region
(their union, e.g. BraTS "whole tumour" = 1, 2, 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from medseg._config import read_json
from medseg.errors import ConfigError, DatasetError

ClassMap = dict[str, tuple[int, ...]]


def read_dataset_json(path: Path) -> tuple[ClassMap, ClassMap, int | None]:
    """Labels, regions and ignore value from an nnU-Net v2 ``dataset.json``.

    Returns
    -------
    labels : dict of str to tuple of int
        Every integer label except background (value 0) and ``"ignore"``.
    regions : dict of str to tuple of int
        Entries whose value is a list (nnU-Net region training).
    ignore : int or None
        Value of the ``"ignore"`` label.
    """
    data = read_json(Path(path))
    entries = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise DatasetError(f"{path}: no 'labels' mapping; expected e.g. {{'background': 0, ...}}")
    labels: ClassMap = {}
    regions: ClassMap = {}
    ignore = None
    for name, value in entries.items():
        if isinstance(value, bool) or not isinstance(value, (int, list)):
            raise DatasetError(f"{path}: label {name!r} must be an int or a list, got {value!r}")
        if isinstance(value, list):
            if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise DatasetError(f"{path}: region {name!r} must list ints, got {value!r}")
            if value != [0]:
                regions[name] = tuple(value)
        elif name == "ignore":
            ignore = value
        elif value != 0:
            labels[name] = (value,)
    return labels, regions, ignore


def parse_label_list(text: str) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise ConfigError(f"labels must be comma-separated integers, got {text!r}") from err
    if not values:
        raise ConfigError(f"no label values in {text!r}")
    return values


def parse_region(text: str) -> tuple[str, tuple[int, ...]]:
    """``"whole=1,2,3"`` -> ``("whole", (1, 2, 3))``."""
    name, sep, values = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"region must look like name=1,2,3, got {text!r}")
    return name.strip(), tuple(parse_label_list(values))


def parse_tolerance(text: str) -> float | dict[str, float]:
    """``"2"`` -> 2.0 for all classes; ``"1=2,2=1.5"`` -> per class (name or label value)."""
    try:
        if "=" not in text:
            return float(text)
        pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
        return {key.strip(): float(value) for key, value in pairs}
    except ValueError as err:
        raise ConfigError(
            f"NSD tolerance must be mm like '2' or per class like '1=2,2=1', got {text!r}"
        ) from err


def resolve_classes(
    labels: Mapping[str, int] | Sequence[int] | None,
    regions: Mapping[str, Sequence[int]] | None,
    dataset: tuple[ClassMap, ClassMap, int | None] | None,
) -> ClassMap | None:
    """Classes to score: labels, then regions.

    Labels: ``labels`` if given, else those of ``dataset.json``. Values given as a list take
    their names from ``dataset.json`` when it names them, else their value as a string.
    Regions: ``regions`` if given, else those of ``dataset.json``. ``None`` when nothing defines
    any class (the caller then uses the label values found in the references).
    """
    named = {v[0]: k for k, v in dataset[0].items()} if dataset else {}
    classes: ClassMap = {}
    if isinstance(labels, Mapping):
        classes.update({str(k): (int(v),) for k, v in labels.items()})
    elif labels is not None:
        classes.update({named.get(int(v), str(int(v))): (int(v),) for v in labels})
    elif dataset:
        classes.update(dataset[0])
    if regions:
        classes.update({str(k): tuple(int(v) for v in vs) for k, vs in regions.items()})
    elif dataset:
        classes.update(dataset[1])
    return classes or None


def resolve_tolerance(
    tolerance: float | Mapping[str, float] | None, classes: ClassMap
) -> float | dict[str, float] | None:
    """Map per-class tolerance keys (class names or label values) onto class names."""
    if tolerance is None or not isinstance(tolerance, Mapping):
        return tolerance
    by_value = {str(v[0]): name for name, v in classes.items() if len(v) == 1}
    resolved = {}
    for key, tol in tolerance.items():
        name = key if key in classes else by_value.get(str(key))
        if name is None:
            raise ConfigError(
                f"NSD tolerance for {key!r}, which is no class (classes: {sorted(classes)})"
            )
        resolved[name] = float(tol)
    return resolved
