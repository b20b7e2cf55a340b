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


def load_engine(spec: str | Path) -> Engine:
    """``"classical"`` gives the random-walker engine; a model folder gives the learned engine."""
    if str(spec) == "classical":
        from medseg.interactive.classical import RandomWalkerEngine

        return RandomWalkerEngine()
    path = Path(spec)
    if not path.is_dir():
        raise ModelFormatError(
            f"{path}: not 'classical' and not a model folder; train one with "
            "`medseg train-interactive DATASET -o MODEL`"
        )
    from medseg.interactive.learned import LearnedEngine

    return LearnedEngine.load(path)
