"""Shared helpers of the benchmark scripts: timing and the printed comparison row.

The scripts run as ``python benchmarks/bench_<area>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_row(work: str, ours: float, peer_name: str, peer: float, note: str) -> None:
    """One line: ``work | medseg t | peer t | peer/medseg ratio | note``."""
    print(
        f"{work:<40} | medseg {ours:7.3f} s | {peer_name} {peer:7.3f} s | "
        f"{peer / ours:5.2f}x | {note}"
    )


def cpu_model() -> str:
    """The CPU's model name, for every benchmark figure (machines differ between sessions)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load() -> str:
    """The 1/5/15-minute load averages, printed beside timings taken on a shared machine."""
    return " ".join(f"{v:.1f}" for v in os.getloadavg())
