"""The per-epoch training log: ``log.csv`` and ``progress.png``, both replaced atomically.

Each row holds ``epoch`` (1-based), ``train_loss``, ``val_loss``, ``lr``, ``epoch_s`` (seconds)
and ``dice_<class>`` (validation Dice per class on the validation patches) plus ``mean_dice``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medseg._atomic import atomic_path


def write_log_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write ``rows`` (dicts with the same keys) as CSV, atomically."""
    path = Path(path)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    _replace(path, lambda tmp: tmp.write_text(buffer.getvalue()))


def plot_progress(
    rows: Sequence[dict[str, Any]], path: Path, title: str = "", validated: str = "patches"
) -> None:
    """Plot losses and validation Dice per class against epoch into a PNG, atomically.

    ``validated`` names what the Dice was measured on (patches, or whole cases in
    time-budgeted runs) in the panel's title.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in rows]
    fig = Figure(figsize=(10, 4.2), dpi=100)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.86, wspace=0.22)
    ax_loss, ax_dice = fig.subplots(1, 2)
    for key, label in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        ax_loss.plot(epochs, [_num(row[key]) for row in rows], marker=".", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_loss.legend(loc="upper right")
    ax_loss.grid(alpha=0.3)
    dice_keys = [k for k in rows[0] if k.startswith("dice_")] if rows else []
    for key in dice_keys:
        ax_dice.plot(epochs, [_num(row[key]) for row in rows], marker=".", label=key[5:])
    if rows:
        ax_dice.plot(
            epochs, [_num(row["mean_dice"]) for row in rows], "k--", linewidth=1.5, label="mean"
        )
    ax_dice.set(xlabel="epoch", ylabel="Dice", ylim=(0, 1), title=f"Validation Dice ({validated})")
    ax_dice.legend(loc="lower right", fontsize="small")
    ax_dice.grid(alpha=0.3)
    for ax in (ax_loss, ax_dice):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    _replace(Path(path), lambda tmp: fig.savefig(tmp, format="png"))


def _num(value: Any) -> float:
    return math.nan if value is None or value == "" else float(value)


def _replace(path: Path, write) -> None:
    with atomic_path(path) as tmp:
        write(tmp)
