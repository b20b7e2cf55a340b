"""An ensemble folder: model folders of one plan's configurations, averaged at prediction.

Layout (``medseg train --config multiplane`` writes it)::

    model/
      ensemble.json     {"format": 1, "name": "multiplane", "fusion": "mean",
                         "members": ["2.5d", "2.5d_plane1", "2.5d_plane2"]}
      plan.json         the plan the members were trained with
      2.5d/ 2.5d_plane1/ 2.5d_plane2/   one model folder per member (see ``model_folder``)

``fusion`` ``"mean"``: the members' class probabilities, each on the input image's grid, are
averaged with equal weights before the argmax (:class:`medseg.infer.EnsemblePredictor`).
"""

from __future__ import annotations

from pathlib import Path

from medseg._config import read_json, write_json
from medseg.errors import ConfigError, ModelFormatError
from medseg.plan.plan import Plan

ENSEMBLE_NAME = "ensemble.json"
ENSEMBLE_FORMAT = 1
FUSIONS = ("mean",)


def is_ensemble_folder(path: Path | str) -> bool:
    """Whether ``path`` holds an ``ensemble.json``."""
    return (Path(path) / ENSEMBLE_NAME).is_file()


def save_ensemble_folder(path: Path | str, plan: Plan, name: str) -> None:
    """Write ``plan.json`` and ``ensemble.json`` for the plan's ensemble ``name``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_json(plan, path / "plan.json")
    members = list(plan.ensembles[name])
    info = {"format": ENSEMBLE_FORMAT, "name": name, "fusion": "mean", "members": members}
    write_json(info, path / ENSEMBLE_NAME)


def ensemble_members(path: Path | str) -> list[Path]:
    """The member model folders listed in ``path/ensemble.json``, in order.

    Raises
    ------
    ModelFormatError
        A missing or malformed ``ensemble.json``, an unknown fusion, or a member path that
        leaves the folder.
    """
    path = Path(path)
    file = path / ENSEMBLE_NAME
    try:
        info = read_json(file)
    except ConfigError as err:
        raise ModelFormatError(str(err)) from err
    if not isinstance(info, dict) or info.get("format") != ENSEMBLE_FORMAT:
        raise ModelFormatError(f"{file}: not an ensemble of format {ENSEMBLE_FORMAT}")
    members = info.get("members")
    if not isinstance(members, list) or len(members) < 2:
        raise ModelFormatError(f"{file}: 'members' must list at least 2 model folders")
    if info.get("fusion", "mean") not in FUSIONS:
        raise ModelFormatError(f"{file}: fusion {info.get('fusion')!r} is not one of {FUSIONS}")
    folders = []
    for member in members:
        if not isinstance(member, str) or Path(member).is_absolute() or ".." in Path(member).parts:
            raise ModelFormatError(f"{file}: member {member!r} must be a folder inside {path}")
        folders.append(path / member)
    return folders
