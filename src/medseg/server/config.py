"""Settings of a ``medseg serve`` process: one frozen dataclass, JSON round-trip."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from medseg.errors import ConfigError

NextOrder = Literal["uncertainty", "first", "random"]
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """What the server serves and its limits.

    Parameters
    ----------
    data : path
        A folder of images or an nnU-Net raw dataset (``imagesTr``/``imagesTs``).
    model : path, optional
        A trained model folder: its prediction is the starting mask of each case, and its
        uncertainty orders the next case.
    engine : str, optional
        ``"universal"`` (the promptable model shipped with medseg; ``"learned"`` is accepted
        too), ``"classical"`` (random walker) or a folder written by
        ``medseg train-interactive``; by default the shipped model, or the classical engine
        when the package was installed without its weights.
    output : path, optional
        Folder for corrected masks and the edit log (default ``DATA/labelsCorrected``).
    token : str, optional
        Required on every request when set (``Authorization: Bearer TOKEN`` or ``?token=``).
    next_order : {"uncertainty", "first", "random"}
        How "next case" picks among unsaved cases; uncertainty needs a model.
    max_sessions : int
        Open sessions at most; sessions idle longer than ``idle_seconds`` are closed to make room.
    idle_seconds : float
        Idle time after which a session may be evicted.
    max_body_bytes : int
        Largest request body accepted (413 above).
    max_prompts : int
        Prompts per session at most.
    max_history_mb : int
        Undo memory per session: each prompt keeps one mask copy (1 byte per voxel), so a
        session takes at most ``max_history_mb`` MiB / voxels prompts (at least 10).
    precompute : bool
        With a model, predict every case in the background at start (for next-case ordering).
    overwrite : bool
        Whether a prompt on one label may paint over another label.
    reference_start : bool
        Whether a dataset's own label files (``labelsTr``/``labelsTs``) may be the starting mask
        (on for cleaning labels; off to segment from scratch).
    seed : int
        Seed of the "random" next-case order.
    """

    data: Path
    model: Path | None = None
    engine: str | None = None
    output: Path | None = None
    token: str | None = None
    next_order: NextOrder = "uncertainty"
    max_sessions: int = 8
    idle_seconds: float = 900.0
    max_body_bytes: int = 4 * 1024 * 1024
    max_prompts: int = 500
    max_history_mb: int = 1024
    precompute: bool = True
    overwrite: bool = False
    reference_start: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        for name in ("model", "output"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        if self.next_order not in ("uncertainty", "first", "random"):
            raise ConfigError(
                f"next_order must be uncertainty, first or random, got {self.next_order!r}"
            )
        for name in ("max_sessions", "max_body_bytes", "max_prompts", "max_history_mb"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.idle_seconds <= 0:
            raise ConfigError(f"idle_seconds must be positive, got {self.idle_seconds}")
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("a token must have at least 8 characters")

    @property
    def output_dir(self) -> Path:
        """Where corrected masks and ``edits.sqlite`` go."""
        return self.output if self.output is not None else self.data / "labelsCorrected"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings; the token is never written out)."""
        out = asdict(self)
        out["token"] = None
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ServeConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown serve setting(s): {', '.join(unknown)}")
        return cls(**values)
