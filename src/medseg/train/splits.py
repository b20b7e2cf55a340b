"""Cross-validation splits, as nnU-Net: ``KFold(shuffle=True, random_state=12345)`` on sorted IDs.

``splits_final.json`` is a list with one ``{"train": [...], "val": [...]}`` per fold (nnU-Net's
format). An existing file is reused so that folds trained at different times agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medseg._config import read_json, write_json
from medseg.errors import ConfigError

SPLITS_NAME = "splits_final.json"


def make_splits(
    case_ids: Sequence[str], num_folds: int, seed: int = 12345
) -> list[dict[str, list[str]]]:
    """``num_folds`` train/validation splits of ``case_ids``.

    Raises
    ------
    ConfigError
        Fewer cases than folds.
    """
    from sklearn.model_selection import KFold

    ids = sorted(case_ids)
    if len(ids) < max(num_folds, 2):
        raise ConfigError(
            f"{len(ids)} labelled cases cannot be split into {num_folds} folds; "
            "train with folds='all' or lower num_folds in the plan"
        )
    kfold = KFold(n_splits=num_folds, shuffle=True, random_state=seed)
    return [
        {"train": [ids[i] for i in train], "val": [ids[i] for i in val]}
        for train, val in kfold.split(ids)
    ]


def load_or_make_splits(
    path: Path, case_ids: Sequence[str], num_folds: int, seed: int = 12345
) -> list[dict[str, list[str]]]:
    """Read ``path`` if it exists and covers exactly ``case_ids``; otherwise make and write it."""
    path = Path(path)
    if path.is_file():
        splits = read_json(path)
        valid = isinstance(splits, list) and all(isinstance(s, dict) for s in splits)
        covered = {c for split in splits for c in split.get("val", [])} if valid else set()
        if valid and covered == set(case_ids) and len(splits) == num_folds:
            return splits
        raise ConfigError(
            f"{path}: splits do not match the dataset's {len(case_ids)} cases and {num_folds} "
            "folds; delete the file to make new splits, or train into a new folder"
        )
    splits = make_splits(case_ids, num_folds, seed)
    write_json(splits, path)
    return splits
