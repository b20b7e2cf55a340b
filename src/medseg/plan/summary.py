"""A Rich table summarising a :class:`Plan` for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medseg.plan.plan import Plan

if TYPE_CHECKING:
    from rich.console import Group


def plan_summary(plan: Plan) -> Group:
    """A table (one column per configuration, one row per setting), then each reason list."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    names = sorted(plan.configurations, key=lambda n: n != plan.default_configuration)
    table = Table(title=f"plan for {plan.dataset_name} (default: {plan.default_configuration})")
    table.add_column("setting", style="bold")
    for name in names:
        table.add_column(name)
    configs = [plan.configurations[n] for n in names]
    rows = {
        "spacing (mm)": [_tuple(c.spacing) for c in configs],
        "patch (voxels)": [_tuple(c.patch_size) for c in configs],
        "batch size": [str(c.batch_size) for c in configs],
        "separate axis": [str(c.separate_axis) for c in configs],
        "slices": [_slices(c) for c in configs],
        "features": ["-".join(map(str, c.network.filters)) for c in configs],
        "strides": [" ".join(_tuple(s) for s in c.network.strides[1:]) for c in configs],
        "schedule": [_schedule(c.training) for c in configs],
        "learning rate": [f"{c.training.learning_rate:g}" for c in configs],
        "class weights": [
            _tuple(c.training.class_weights) if c.training.class_weights else "-" for c in configs
        ],
        "foreground patches": [
            f"{c.training.oversample_foreground:.0%}"
            + (
                f" on labels {list(c.training.oversample_labels)}"
                if c.training.oversample_labels
                else ""
            )
            for c in configs
        ],
    }
    for key, values in rows.items():
        table.add_row(key, *values)
    table.add_row("normalisation", *[", ".join(n.scheme for n in plan.normalization)] * len(names))
    table.add_row("outputs", *[str(plan.num_classes)] * len(names))
    order = _tuple(plan.transpose) if plan.transpose else "image order"
    table.add_row("axis order", *[order] * len(names))
    parts: list[Table | Text] = [table]
    for ensemble, members in plan.ensembles.items():
        parts.append(Text(f"ensemble {ensemble}: {' + '.join(members)} (softmax averaged)"))
    for name, config in zip(names, configs, strict=True):
        parts.append(Text(f"\nwhy ({name}):", style="bold"))
        parts.extend(Text(f"  - {reason}") for reason in config.reasons)
    return Group(*parts)


def _slices(config) -> str:
    """``-`` for 3D patches, else the slice axis and the 2.5D neighbours on each side."""
    if len(config.patch_size) == 3:
        return "-"
    extra = f", +-{config.neighbours} neighbours" if config.neighbours else ""
    return f"along axis {config.plane}{extra}"


def _schedule(training) -> str:
    if training.time_budget_s is not None:
        return (
            f"{training.time_budget_s:g} s on the clock (~{training.epochs} x "
            f"{training.iterations_per_epoch} iterations)"
        )
    return f"{training.epochs} x {training.iterations_per_epoch} iterations"


def _tuple(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
