"""What one prediction is, below the modules that make it and write it.

:class:`Prediction` (what :meth:`medseg.infer.Predictor.predict_image` returns), the progress
callback types, and :class:`ImagePredictor`, the part of a predictor that writing files needs
(:func:`medseg.infer.files.predict_files`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from medseg.infer.classification import CaseClassification
from medseg.io import Image
from medseg.train.model_folder import ModelFolder

ProgressFn = Callable[[int, int], None]
CaseProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Prediction:
    """What :meth:`Predictor.predict_image` returns, all on the input image's voxel grid.

    ``labels``: ``(1, *spatial)`` uint8 label map. ``probabilities``: ``(K, *spatial)`` float16
    class (or region) probabilities, or ``None``. ``uncertainty``: ``{"entropy": Image,
    "mutual_information": Image}`` of ``(1, *spatial)`` float32 maps in [0, 1], or empty.
    ``members`` is the number of averaged predictions (folds x mirror combinations).
    ``classification``: the case's class probabilities, for a model trained with ``--classify``.
    """

    labels: Image
    probabilities: Image | None = None
    uncertainty: dict[str, Image] = field(default_factory=dict)
    members: int = 1
    classification: CaseClassification | None = None


class ImagePredictor(Protocol):
    """A model applied to one image at a time (:class:`medseg.infer.Predictor` is one)."""

    model: ModelFolder

    def predict_image(
        self,
        image: Image,
        *,
        probabilities: bool = False,
        uncertainty: bool = False,
        case_id: str = "",
        on_progress: ProgressFn | None = None,
    ) -> Prediction: ...
