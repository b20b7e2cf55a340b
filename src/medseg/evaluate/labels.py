"""Which classes to score: from options, an nnU-Net ``dataset.json``, or the data itself.

A class is a name and a tuple of label values: one value for a label, several for a region
(their union, e.g. BraTS "whole tumour" = 1, 2, 3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medseg._typing import PathLikeStr
from medseg.data.nnunet import parse_labels, read_dataset_json
from medseg.errors import ConfigError

ClassMap = dict[str, tuple[int, ...]]


def classes_from_dataset_json(path: PathLikeStr) -> tuple[ClassMap, ClassMap, int | None]:
    """Classes to score and the ignore value, from an nnU-Net v2 ``dataset.json``.

    The data layer reads and validates the file (:func:`medseg.data.read_dataset_json`,
    :func:`medseg.data.parse_labels`), so evaluation reads labels exactly as dataset loading does.

    Parameters
    ----------
    path : path
        The ``dataset.json`` file.

    Returns
    -------
    labels : dict of str to tuple of int
        Every integer entry except background (0) and ``ignore``, as a one-value tuple. In a
        region dataset these are the regions written as a plain integer, also in ``regions``
        (:func:`resolve_classes` keys classes by name, so each is scored once).
    regions : dict of str to tuple of int
        In a region dataset, every entry except background and ``ignore``, with the label
        values it unites (an integer entry is a one-value region); empty otherwise.
    ignore : int or None
        Value of the ``ignore`` label.

    Raises
    ------
    DatasetError
        The file is missing, not JSON, or not a valid nnU-Net v2 ``dataset.json`` (see
        :func:`medseg.data.parse_labels`, e.g. non-consecutive label values).
    """
    meta = read_dataset_json(path)
    spec = parse_labels(meta["labels"], meta.get("regions_class_order"), source=str(path))
    labels = {name: (value,) for name, value in spec.foreground.items()}
    return labels, dict(spec.regions), spec.ignore


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
    labels: Mapping[str, int] | Sequence[int | str] | None,
    regions: Mapping[str, Sequence[int]] | None,
    dataset: tuple[ClassMap, ClassMap, int | None] | None,
) -> ClassMap | None:
    """Classes to score: labels, then regions.

    Labels: ``labels`` if given, else those of ``dataset.json``. Values given as a list take
    their names from ``dataset.json`` when it names them, else their value as a string; names
    in the list are looked up in ``dataset.json`` (a :class:`ConfigError` if it has no such
    name).
    Regions: ``regions`` if given, else those of ``dataset.json``. ``None`` when nothing defines
    any class (the caller then uses the label values found in the references).
    """
    named = {v[0]: k for k, v in dataset[0].items()} if dataset else {}
    classes: ClassMap = {}
    if isinstance(labels, Mapping):
        classes.update({str(k): (int(v),) for k, v in labels.items()})
    elif labels is not None:
        by_name = dict(dataset[0]) if dataset else {}
        for v in labels:
            if isinstance(v, str):
                if v not in by_name:
                    raise ConfigError(
                        f"label {v!r} is not named in dataset.json (names: {sorted(by_name)}); "
                        "give label values, or the dataset.json that names it (--dataset-json)"
                    )
                classes[v] = by_name[v]
            else:
                classes[named.get(int(v), str(int(v)))] = (int(v),)
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
