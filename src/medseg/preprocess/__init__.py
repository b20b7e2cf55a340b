"""Preprocessing: crop to nonzero, normalise, resample, cache; and the way back for predictions."""

from medseg.preprocess.cache import CaseCache, preprocess_dataset
from medseg.preprocess.case import (
    CaseProperties,
    outputs_to_labels,
    preprocess_case,
    preprocess_image,
    restore_probabilities,
    restore_to_original,
)
from medseg.preprocess.normalize import normalize
from medseg.preprocess.resample import resample_image, resample_label, resampled_slabs

__all__ = [
    "CaseCache",
    "CaseProperties",
    "normalize",
    "outputs_to_labels",
    "preprocess_case",
    "preprocess_dataset",
    "preprocess_image",
    "resample_image",
    "resample_label",
    "resampled_slabs",
    "restore_probabilities",
    "restore_to_original",
]
