"""The dataset check that ``plan`` and ``train`` run before they start (``medseg check``'s)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medseg.data import Dataset


def require_checked_dataset(dataset: Dataset, *, accept_warnings: bool) -> None:
    """Run :func:`medseg.data.check_dataset`; on a problem print its table and stop.

    Errors always stop (one line on stderr naming the first problem, exit code 1); warnings
    stop unless ``accept_warnings``. The table of every problem goes to stdout, as with
    ``medseg check``.

    Raises
    ------
    DatasetError
        The check found an error, or a warning and ``accept_warnings`` is false.
    """
    from rich.console import Console
    from rich.progress import Progress

    from medseg.data import check_dataset
    from medseg.errors import DatasetError

    err = Console(stderr=True, soft_wrap=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task(f"checking {dataset.name}", total=None)
        report = check_dataset(
            dataset,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    stop_on_warnings = bool(report.warnings) and not accept_warnings
    if report.errors or stop_on_warnings:
        Console(soft_wrap=True).print(report.table())
    report.raise_for_errors()
    if stop_on_warnings:
        first = report.warnings[0]
        where = f"case {first.case_id}, {first.file}: " if first.file else ""
        raise DatasetError(
            f"{report.dataset}: {report.summary()}; first: {where}{first.message}; "
            "pass --accept-warnings to go on"
        )
    if report.warnings:
        err.print(f"[yellow]dataset check:[/yellow] {report.summary()} (accepted)")
