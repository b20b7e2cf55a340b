"""The engine interface shared by classical and learned interactive segmenters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from medseg._typing import BoolArray, FloatArray, SpacingMM
from medseg.errors import ModelFormatError

# re-exported: the engines' shared normalisation lives below them, in medseg.interactive.intensity
from medseg.interactive.intensity import normalize_intensity as normalize_intensity
from medseg.interactive.prompts import Prompt


@runtime_checkable
class Engine(Protocol):
    """Anything that turns prompts on a region of interest into object probabilities."""

    name: str

    def predict(
        self,
        roi_image: FloatArray,
        prompts: Sequence[Prompt],
        prev_mask: BoolArray | None,
        *,
        spacing: SpacingMM,
    ) -> FloatArray:
        """Object probability for every voxel of the region of interest.

        Parameters
        ----------
        roi_image : ndarray, shape (C, Z, Y, X) or (C, Y, X)
            Image crop, raw intensities, channel first.
        prompts : sequence of Click, Box, Scribble
            All prompts so far, in crop coordinates (they may reach outside the crop).
        prev_mask : ndarray of bool, shape (Z, Y, X) or (Y, X), or None
            The current mask on the crop (a previous prediction or a model's mask to correct);
            None before the first prediction.
        spacing : tuple of float
            Voxel size in mm, array order.

        Returns
        -------
        ndarray of float32, shape (Z, Y, X) or (Y, X)
            Probabilities in [0, 1]; the mask is ``probabilities >= 0.5``.
        """
        ...


UNIVERSAL = "universal"
"""Name of the model that ships inside the package (see :func:`universal_model_dir`)."""


def universal_model_dir() -> Path:
    """Folder of the shipped universal model (``interactive.json`` + ``model.safetensors``).

    Raises
    ------
    ModelFormatError
        When the package was installed without its weights.
    """
    folder = Path(__file__).parent / "weights" / UNIVERSAL
    if not (folder / "model.safetensors").is_file():
        raise ModelFormatError(
            f"{folder}: the universal model's weights are missing from this medseg install; "
            "reinstall medseg, or pass a model folder from `medseg train-interactive`"
        )
    return folder


def default_engine() -> Engine:
    """The engine used when none is given: the shipped universal model (no training needed)."""
    from medseg.interactive.learned import LearnedEngine

    engine = LearnedEngine.load(universal_model_dir())
    engine.name = UNIVERSAL
    return engine


def load_engine(spec: str | Path) -> Engine:
    """``"universal"`` (or ``"learned"``, the name ``medseg serve --engine`` uses) gives the
    shipped model, ``"classical"`` the random walker, a model folder the learned engine trained
    on it."""
    if str(spec) in (UNIVERSAL, "learned"):
        return default_engine()
    if str(spec) == "classical":
        from medseg.interactive.classical import RandomWalkerEngine

        return RandomWalkerEngine()
    path = Path(spec)
    if not path.is_dir():
        raise ModelFormatError(
            f"{path}: not 'universal', not 'classical' and not a model folder; train one with "
            "`medseg train-interactive DATASET -o MODEL`"
        )
    from medseg.interactive.learned import LearnedEngine

    return LearnedEngine.load(path)
