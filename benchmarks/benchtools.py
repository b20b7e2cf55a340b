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
    """The CPU's model name, family/model numbers and bf16 support, for every benchmark figure.

    Machines differ between sessions, and a virtual machine may name its CPU only "AMD EPYC":
    the family and model numbers (25/17: Zen 4; 26: Zen 5) and the AVX-512 BF16 flag (bf16
    autocast about 3x faster) tell them apart.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
        if not line.strip():
            break  # the first processor is enough
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    family, model = fields.get("cpu family"), fields.get("model")
    bf16 = "AVX-512 BF16" if "avx512_bf16" in fields.get("flags", "").split() else "no AVX-512 BF16"
    numbers = f"family {family}, model {model}, " if family and model else ""
    return f"{name} ({numbers}{bf16})"


def load() -> str:
    """The 1/5/15-minute load averages, printed beside timings taken on a shared machine."""
    return " ".join(f"{v:.1f}" for v in os.getloadavg())
