"""The compute budget a plan is fitted to: GPU memory on CUDA, training time on a CPU.

On CUDA medseg follows nnU-Net's memory model (feature-map voxels of the network scaled from a
reference of 560e6 at 8 GB). On a CPU, time is the limit: a small network (8 -> 128 features)
trained for many cheap iterations learns more in ten minutes than an nnU-Net-sized one (the
measurements are in docs/plan.md, "Why a CPU plan is small"), so the feature-map reference is
scaled to the time one iteration may take.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from medseg.errors import ConfigError

GB = 1024**3


@dataclass(frozen=True, kw_only=True)
class PlanBudget:
    """What the plan may spend.

    Parameters
    ----------
    device : {"cpu", "cuda"}
        Where training runs.
    memory_gb : float
        Memory target in GiB. CUDA: the GPU memory the network may use (nnU-Net plans for 8).
        CPU: RAM the training process may use.
    time_budget_s : float
        CPU only: wall time one training run (one fold) should take, in seconds.
    cpu_cores : int
        CPU only: cores training may use.
    target_iterations : int
        CPU only: how many training iterations ``time_budget_s`` should buy. With
        ``reference_iteration_s`` this sets the work one iteration may do.
    reference_iteration_s : float
        CPU only: measured seconds per iteration of the reference network (8-16-32-64-128, patch
        64^3, batch 2) on 2 cores: 0.35 with bf16 autocast on a CPU with AVX-512 BF16, 1.0 in
        float32 (docs/plan.md, "Why a CPU plan is small").
    min_time_scale : float
        CPU only: the per-iteration work is never planned below this fraction of the reference,
        so a tight budget trains fewer iterations rather than tiny patches.
    base_features, max_features_3d, max_features_2d : int
        Network width: features of the first stage, doubling per stage up to the maximum.
    """

    device: Literal["cpu", "cuda"] = "cpu"
    memory_gb: float = 8.0
    time_budget_s: float = 600.0
    cpu_cores: int = 2
    target_iterations: int = 1500
    reference_iteration_s: float = 1.0
    min_time_scale: float = 0.5
    base_features: int = 8
    max_features_3d: int = 128
    max_features_2d: int = 128

    @classmethod
    def for_device(
        cls,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        *,
        time_budget_s: float = 600.0,
        cpu_cores: int | None = None,
    ) -> PlanBudget:
        """The budget of this machine: CUDA if torch sees a GPU (and ``device`` allows it).

        CUDA gets nnU-Net's network (32 -> 320 features, 512 in 2D) and an 8 GB memory target
        (less if the GPU has less). A CPU gets the small network, the time budget, the usable
        cores and a reference iteration time chosen by whether the CPU has bf16 instructions.

        Raises
        ------
        ConfigError
            If ``device`` is ``"cuda"`` and torch sees no GPU, or ``device`` is unknown.
        """
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but torch sees no CUDA GPU; use cpu or auto")
        if device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device {device!r}: expected auto, cpu or cuda")
        if device != "cpu" and torch.cuda.is_available():
            total = torch.cuda.get_device_properties(0).total_memory / GB
            return cls(
                device="cuda",
                memory_gb=min(8.0, float(total)),
                base_features=32,
                max_features_3d=320,
                max_features_2d=512,
            )
        if cpu_cores is None:
            has_affinity = hasattr(os, "sched_getaffinity")
            cpu_cores = len(os.sched_getaffinity(0)) if has_affinity else (os.cpu_count() or 1)
        return cls(
            device="cpu",
            memory_gb=_ram_gb() * 0.5,
            time_budget_s=time_budget_s,
            cpu_cores=max(1, cpu_cores),
            reference_iteration_s=0.35 if _has_bf16() else 1.0,
        )

    def as_dict(self) -> dict[str, float]:
        """Numeric summary stored in ``Plan.budget`` (``cuda`` is 1.0 on a GPU, else 0.0)."""
        return {
            "cuda": 1.0 if self.device == "cuda" else 0.0,
            "memory_gb": float(self.memory_gb),
            "time_budget_s": float(self.time_budget_s),
            "cpu_cores": float(self.cpu_cores),
            "target_iterations": float(self.target_iterations),
            "reference_iteration_s": float(self.reference_iteration_s),
        }


RESENC_MEMORY_GB = {"M": 8.0, "L": 24.0, "XL": 40.0}
"""GPU memory targets of nnU-Net's residual-encoder presets (nnUNetPlannerResEncM/L/XL)."""


def network_preset_budget(
    budget: PlanBudget, overrides: Mapping[str, Any]
) -> tuple[PlanBudget, str | None]:
    """``budget`` with the GPU memory target of a ``resenc_unet`` size preset, and why.

    nnU-Net's ResEnc M, L and XL presets build the same network and differ only in the GPU
    memory target the planner fits patch and batch to (8, 24 and 40 GB). With overrides
    ``network.architecture=resenc_unet`` and ``network.size`` M, L or XL, a CUDA budget gets
    that target; a CPU budget is limited by time, so it is left as it is.

    Parameters
    ----------
    budget : PlanBudget
    overrides : mapping
        Plan overrides as given to :func:`medseg.plan.make_plan` (keys ``network.size`` or
        ``<configuration>.network.size``).

    Returns
    -------
    tuple of (PlanBudget, str or None)
        The budget and a sentence for the plan's reasons (None without a ResEnc preset).
    """
    # "network.size" or "3d.network.size": the field after the last "network."
    values = {
        key.split(".")[-1]: value
        for key, value in overrides.items()
        if key.split(".")[-2:-1] == ["network"]
    }
    size = values.get("size")
    if values.get("architecture") != "resenc_unet" or size not in RESENC_MEMORY_GB:
        return budget, None
    target = RESENC_MEMORY_GB[size]
    if budget.device != "cuda":
        return budget, (
            f"network: nnU-Net's ResEnc {size} preset sets a {target:g} GB GPU memory target; "
            "a CPU plan is sized by its time budget instead"
        )
    return replace(budget, memory_gb=target), (
        f"network: nnU-Net's ResEnc {size} preset: patch and batch fitted to {target:g} GB of "
        "GPU memory"
    )


def _ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    except (ValueError, OSError, AttributeError):
        return 8.0


def _has_bf16() -> bool:
    """True if the CPU advertises AVX-512 BF16 or AMX BF16 (Linux ``/proc/cpuinfo``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
