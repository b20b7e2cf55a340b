"""Prediction: sliding window, mirroring TTA, fold averaging, uncertainty, post-processing.

Start with :class:`Predictor` (see ``docs/predict.md``)::

    from medseg.infer import Predictor

    predictor = Predictor("model/", device="auto")
    prediction = predictor.predict_image(image)          # labels on the input's grid
    report = predictor.predict_files("images/", "predictions/")
"""

from medseg.infer.cv_postprocessing import (
    PostprocessingChoice,
    determine_postprocessing,
    postprocessing_from_training,
)
from medseg.infer.ensemble import EnsemblePredictor, load_predictor
from medseg.infer.files import CaseFailure, CaseOutput, PredictReport, label_volumes
from medseg.infer.inputs import InputCase, find_inputs, require_inputs
from medseg.infer.postprocessing import (
    PostprocessingRules,
    apply_postprocessing,
    load_postprocessing,
    save_postprocessing,
    select_postprocessing,
)
from medseg.infer.predictor import Prediction, Predictor
from medseg.infer.sliding_window import (
    WindowSettings,
    gaussian_importance_map,
    sliding_window_predict,
    tile_starts,
)

__all__ = [
    "CaseFailure",
    "CaseOutput",
    "EnsemblePredictor",
    "InputCase",
    "PostprocessingChoice",
    "PostprocessingRules",
    "PredictReport",
    "Prediction",
    "Predictor",
    "WindowSettings",
    "apply_postprocessing",
    "determine_postprocessing",
    "find_inputs",
    "gaussian_importance_map",
    "label_volumes",
    "load_postprocessing",
    "load_predictor",
    "postprocessing_from_training",
    "require_inputs",
    "save_postprocessing",
    "select_postprocessing",
    "sliding_window_predict",
    "tile_starts",
]
