"""Datasets: discovery (nnU-Net raw, paired folders, CSV manifest), validation, examples.

Synthesis helpers live in :mod:`medseg.data.synth` and the built-in example datasets in
:mod:`medseg.data.example` (imported on use: they pull in SciPy and nilearn's template files).
"""

from medseg.data.check import Problem, ValidationReport, check_dataset
from medseg.data.dataset import Case, Dataset, LabelSpec
from medseg.data.discover import infer_labels, load_dataset, load_manifest, load_paired_folders
from medseg.data.nnunet import load_nnunet, parse_labels, read_dataset_json, write_dataset_json

__all__ = [
    "Case",
    "Dataset",
    "LabelSpec",
    "Problem",
    "ValidationReport",
    "check_dataset",
    "infer_labels",
    "load_dataset",
    "load_manifest",
    "load_nnunet",
    "load_paired_folders",
    "parse_labels",
    "read_dataset_json",
    "write_dataset_json",
]
