"""Partially labelled datasets: the ``annotated_classes`` declaration of ``dataset.json``.

A case may declare which foreground classes its label map annotates::

    "annotated_classes": {"case_007": [1, 3], "case_012": [2]}

Cases not listed annotate every class. In a listed case a voxel labelled background means
"background or one of the classes this case did not annotate"; training then uses the marginal
loss (:class:`medseg.train.marginal.MarginalLoss`) instead of calling the missing classes
background.

:func:`annotated_classes` reads and checks the declaration: an unknown case or class, a
declared class absent from the case's label map, or an undeclared class present in it is a
:class:`~medseg.errors.DatasetError` naming the case and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medseg.data.dataset import Dataset
from medseg.data.nnunet import update_dataset_json
from medseg.errors import DatasetError
from medseg.io import read_image


def annotated_classes(dataset: Dataset) -> dict[str, tuple[int, ...]]:
    """The classes each partially labelled case annotates, checked against its label map.

    Parameters
    ----------
    dataset : Dataset
        An nnU-Net layout dataset whose ``dataset.json`` may hold ``annotated_classes``.

    Returns
    -------
    dict of str to tuple of int
        Case id -> annotated foreground classes, for the cases listed (others annotate all).

    Raises
    ------
    DatasetError
        The entry is malformed, names an unknown case or class, or a case's label map lacks a
        class it declares (or holds one it does not declare).
    """
    path = dataset.root / "dataset.json"
    meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    entry = meta.get("annotated_classes", {})
    if not isinstance(entry, dict):
        raise DatasetError(f"{path}: 'annotated_classes' must map case ids to lists of classes")
    foreground = set(dataset.labels.foreground.values())
    known = {c.case_id: c for c in dataset.labelled}
    out: dict[str, tuple[int, ...]] = {}
    for case_id, classes in sorted(entry.items()):
        where = f"{path}: annotated_classes[{case_id!r}]"
        if case_id not in known:
            raise DatasetError(f"{where}: no labelled case of that name")
        if not isinstance(classes, list) or not all(isinstance(c, int) for c in classes):
            raise DatasetError(f"{where}: must be a list of label values, e.g. [1, 3]")
        unknown = sorted(set(classes) - foreground)
        if unknown:
            raise DatasetError(
                f"{where}: {unknown} are not foreground classes of the dataset "
                f"({sorted(foreground)})"
            )
        label_path = known[case_id].label_path
        assert label_path is not None
        present = {int(v) for v in np.unique(read_image(label_path).array)} & foreground
        missing, extra = sorted(set(classes) - present), sorted(present - set(classes))
        if missing:
            raise DatasetError(
                f"{label_path}: the case declares classes {missing} in annotated_classes but its "
                "label map does not contain them; remove them from the declaration or add the "
                "missing annotation"
            )
        if extra:
            raise DatasetError(
                f"{label_path}: the label map contains classes {extra} that annotated_classes "
                f"does not declare for {case_id!r}; declare them"
            )
        out[case_id] = tuple(sorted(classes))
    return out


def write_partial_declaration(root: Path, declared: dict[str, list[int]]) -> None:
    """Add (or replace) ``annotated_classes`` in ``root/dataset.json``."""
    entry = {k: sorted(v) for k, v in sorted(declared.items())}
    update_dataset_json(root, {"annotated_classes": entry})
