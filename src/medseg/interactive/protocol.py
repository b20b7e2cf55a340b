"""Evaluate an interactive engine with simulated users (CVPR 2025 protocol and variants).

Protocols, each run per case and per foreground class (the class mask is the object):

``"cvpr"``
    Step 0: a box on the median object slice with 0-5 px jitter spanning the object's z-extent;
    steps 1-5: one click at the distance maximum of the largest 26-connected error component,
    positive if the truth there is object (CVPR 2025 interactive 3D challenge).
``"clicks"``
    Clicks only, by the RITM rule (centre of the larger of the false-negative and
    false-positive regions), up to ``n_interactions`` (default 20); a case stops once its IoU
    reaches 0.90 after at least 5 clicks, as in RITM.
``"scribbles"``
    Step 1: a positive centre-line stroke on the slice of largest object cross-section; then
    correction strokes on the largest error component (default 6 strokes in all).

After each interaction: Dice, NSD at ``tol_mm`` (default 2 mm), IoU (from Dice) and the
engine's time. Summaries: mean per step, AUC (trapezoid over the click steps for "cvpr", over
all steps otherwise), final scores, NoC@85 / NoC@90 (interactions, capped at the protocol's
count) and mean latency. Cases that stopped early keep their last score in per-step means.
"""

from __future__ import annotations

import csv
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medseg._atomic import atomic_path
from medseg._config import write_json
from medseg._typing import BoolArray
from medseg.data.dataset import Dataset
from medseg.errors import DatasetError
from medseg.interactive.engine import Engine
from medseg.interactive.metrics import interaction_auc, iou_from_dice, number_of_clicks
from medseg.interactive.session import Session
from medseg.interactive.simulate import (
    error_click,
    error_scribble,
    ritm_click,
    simulate_box,
    simulate_scribble,
)
from medseg.io import Image

ProtocolName = Literal["cvpr", "clicks", "scribbles"]
DEFAULT_INTERACTIONS: dict[str, int] = {"cvpr": 6, "clicks": 20, "scribbles": 6}
CSV_FIELDS = ("case_id", "label", "step", "prompt", "dice", "nsd", "iou", "seconds")


@dataclass(frozen=True)
class InteractiveEvaluation:
    """Per-step rows (one dict per case, class and interaction) and the summary dict."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]


def simulate_case(
    engine: Engine,
    image: Image,
    ref: BoolArray,
    *,
    protocol: ProtocolName = "cvpr",
    n_interactions: int | None = None,
    tol_mm: float = 2.0,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Run one simulated user on one object; one dict per interaction.

    Parameters
    ----------
    image : Image
        The case image, channel first.
    ref : ndarray of bool, shape (Z, Y, X) or (Y, X)
        The object's true mask (non-empty).

    Returns
    -------
    list of dict
        Keys ``step`` (1-based), ``prompt``, ``dice``, ``nsd``, ``iou``, ``seconds``.
    """
    from medseg.evaluate import dice, normalized_surface_dice

    if protocol not in DEFAULT_INTERACTIONS:
        raise DatasetError(
            f"unknown protocol {protocol!r}; use one of {list(DEFAULT_INTERACTIONS)}"
        )
    total = n_interactions or DEFAULT_INTERACTIONS[protocol]
    session = Session(image, engine)
    mask = np.zeros(ref.shape, dtype=bool)
    steps: list[dict[str, Any]] = []
    for step in range(1, total + 1):
        kind = _next_prompt(session, protocol, step, mask, ref, rng)
        if kind is None:  # perfect already: nothing left to correct
            kind, seconds = "none", 0.0
        else:
            start = time.perf_counter()
            mask = session.predict().mask
            seconds = time.perf_counter() - start
        dsc = float(dice(mask, ref))
        nsd = float(normalized_surface_dice(mask, ref, image.spacing, tol_mm))
        steps.append(
            {
                "step": step,
                "prompt": kind,
                "dice": dsc,
                "nsd": nsd,
                "iou": iou_from_dice(dsc),
                "seconds": seconds,
            }
        )
        if protocol == "clicks" and step >= 5 and steps[-1]["iou"] >= 0.90:
            break
    return steps


def _next_prompt(
    session: Session,
    protocol: str,
    step: int,
    mask: BoolArray,
    ref: BoolArray,
    rng: np.random.Generator,
) -> str | None:
    if protocol == "cvpr" and step == 1:
        box = simulate_box(ref, rng)
        session.add_box(box.lo, box.hi)
        return "box"
    if protocol == "scribbles":
        stroke = (
            simulate_scribble(ref, rng, kind="skeleton")
            if step == 1
            else error_scribble(mask, ref, rng)
        )
        if stroke is None:
            return None
        session.add_scribble(mask=_paint(stroke.voxels, ref.shape), positive=stroke.positive)
        return "scribble+" if stroke.positive else "scribble-"
    click = ritm_click(mask, ref, rng) if protocol == "clicks" else error_click(mask, ref, rng)
    if click is None:
        return None
    session.add_click(click.point, positive=click.positive)
    return "click+" if click.positive else "click-"


def _paint(voxels: np.ndarray, shape: tuple[int, ...]) -> BoolArray:
    painted = np.zeros(shape, dtype=bool)
    painted[tuple(voxels.T)] = True
    return painted


def evaluate_interactive(
    engine: Engine,
    dataset: Dataset,
    *,
    protocol: ProtocolName = "cvpr",
    classes: Sequence[int | str] | None = None,
    max_cases: int | None = None,
    n_interactions: int | None = None,
    tol_mm: float = 2.0,
    seed: int = 0,
    out_dir: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> InteractiveEvaluation:
    """Simulate users on every labelled case of ``dataset`` and score each interaction.

    Parameters
    ----------
    engine : Engine
        ``load_engine("classical")`` or a learned engine.
    dataset : Dataset
        Labelled cases (images read with :func:`medseg.io.read_channels`).
    protocol : {"cvpr", "clicks", "scribbles"}
        See the module docstring.
    classes : sequence of int or str, optional
        Label values or names to evaluate, each as its own object; default every foreground
        label.
    max_cases : int, optional
        Evaluate only the first cases.
    n_interactions : int, optional
        Interactions per object (default 6, 20 and 6 for the three protocols).
    tol_mm : float
        NSD tolerance in mm.
    seed : int
        Seed of the simulated user's tie breaks and jitter.
    out_dir : Path, optional
        Where to write ``interactive_<protocol>_steps.csv`` and
        ``interactive_<protocol>_summary.json``.
    on_progress : callable, optional
        Called as ``on_progress(done, total)`` after each case.

    Returns
    -------
    InteractiveEvaluation
    """
    from medseg.io import read_channels, read_image

    values = _class_values(dataset, classes)
    cases = dataset.labelled[:max_cases] if max_cases else dataset.labelled
    if not cases:
        raise DatasetError(f"{dataset.root}: no labelled cases to evaluate")
    names = {v: n for n, v in dataset.labels.labels.items()}
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for done, case in enumerate(cases, start=1):
        image = read_channels(case.image_paths)
        label = read_image(case.label_path).array[0]
        for value in values:
            ref = label == value
            if not ref.any():
                warnings.warn(f"{case.case_id}: label {value} is empty; skipped", stacklevel=2)
                continue
            for row in simulate_case(
                engine,
                image,
                ref,
                protocol=protocol,
                n_interactions=n_interactions,
                tol_mm=tol_mm,
                rng=rng,
            ):
                rows.append({"case_id": case.case_id, "label": names.get(value, str(value)), **row})
        if on_progress is not None:
            on_progress(done, len(cases))
    total = n_interactions or DEFAULT_INTERACTIONS[protocol]
    summary = summarize(rows, protocol=protocol, n_interactions=total)
    summary.update(engine=engine.name, dataset=str(dataset.root), seed=seed, tol_mm=tol_mm)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_csv(rows, out_dir / f"interactive_{protocol}_steps.csv")
        write_json(summary, out_dir / f"interactive_{protocol}_summary.json")
    return InteractiveEvaluation(rows=rows, summary=summary)


def summarize(
    rows: Sequence[dict[str, Any]], *, protocol: str, n_interactions: int
) -> dict[str, Any]:
    """Aggregate per-step rows into per-class and overall numbers (see module docstring)."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        groups.setdefault(row["label"], {}).setdefault(row["case_id"], []).append(row)
    per_class = {
        label: _summarize_objects(objs, protocol, n_interactions) for label, objs in groups.items()
    }
    overall = (
        {
            key: float(np.mean([c[key] for c in per_class.values()]))
            for key in (
                "dice_auc",
                "nsd_auc",
                "final_dice",
                "final_nsd",
                "noc85",
                "noc90",
                "mean_seconds",
            )
        }
        if per_class
        else {}
    )
    return {
        "protocol": protocol,
        "n_interactions": n_interactions,
        "classes": per_class,
        "overall": overall,
    }


def _summarize_objects(
    objects: dict[str, list[dict[str, Any]]], protocol: str, total: int
) -> dict[str, Any]:
    dice = np.array([_pad([r["dice"] for r in rs], total) for rs in objects.values()])
    nsd = np.array([_pad([r["nsd"] for r in rs], total) for rs in objects.values()])
    first = 1 if protocol == "cvpr" else 0  # cvpr: AUC over the click steps, after the box
    nocs = {
        t: [
            number_of_clicks([r["iou"] for r in rs], t, max_clicks=total) for rs in objects.values()
        ]
        for t in (0.85, 0.90)
    }
    seconds = [r["seconds"] for rs in objects.values() for r in rs if r["prompt"] != "none"]
    return {
        "n_objects": len(objects),
        "dice_per_step": dice.mean(0).tolist(),
        "nsd_per_step": nsd.mean(0).tolist(),
        "dice_auc": float(np.mean([interaction_auc(d[first:]) for d in dice])),
        "nsd_auc": float(np.mean([interaction_auc(n[first:]) for n in nsd])),
        "final_dice": float(dice[:, -1].mean()),
        "final_nsd": float(nsd[:, -1].mean()),
        "noc85": float(np.mean(nocs[0.85])),
        "noc90": float(np.mean(nocs[0.90])),
        "mean_seconds": float(np.mean(seconds)) if seconds else 0.0,
    }


def _pad(values: list[float], total: int) -> list[float]:
    """Carry the last score forward for a case that stopped early."""
    return values + [values[-1]] * (total - len(values))


def _class_values(dataset: Dataset, classes: Sequence[int | str] | None) -> list[int]:
    foreground = dataset.labels.foreground
    if classes is None:
        return sorted(foreground.values())
    values = []
    for item in classes:
        if isinstance(item, str) and item in foreground:
            values.append(foreground[item])
        elif str(item).isdigit() and int(item) in foreground.values():
            values.append(int(item))
        else:
            raise DatasetError(
                f"{dataset.root}: class {item!r} is not a foreground label; "
                f"choose from {sorted(foreground.items(), key=lambda kv: kv[1])}"
            )
    return values


def _write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
