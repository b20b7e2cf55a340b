"""Learning from imperfect labels: sparse (scribbles, clicks, slices), noisy, several raters.

See ``docs/weak.md``. The parts:

- :mod:`medseg.weak.sparse`: simulate scribbles / clicks / partial slices with an ``ignore``
  label, check sparse label files, the naive baseline.
- :mod:`medseg.weak.raters`: several raters per case (``labelsTr/<case>_rater<k>``), STAPLE
  consensus (SimpleITK), agreement maps; :mod:`medseg.weak.rater_metrics`: per-rater Dice,
  Dice to the consensus, generalised energy distance, calibration against rater agreement.
- :mod:`medseg.weak.corrupt`: controlled label corruption (missing components, flipped
  classes, erosion/dilation, shifts), deterministic by seed; simulated raters.
- :mod:`medseg.weak.partial`: partially labelled cases (``annotated_classes`` in
  dataset.json, checked) and the marginal Dice + CE loss.
- :mod:`medseg.weak.correction`: early-learning label correction for noisy labels (ADELE-style,
  simplified), through the ``wrap_loss`` hook of :func:`medseg.train.train_model`.
- :mod:`medseg.weak.boxes`: box labels (a JSON box file) -> pseudo-masks by the classical
  random-walker engine.
- :mod:`medseg.weak.grow`: sparse labels grown into dense pseudo-labels by a multi-label random
  walker, uncertain voxels left ``ignore``.
"""

from medseg.weak.boxes import (
    LabelBox,
    box_pseudo_mask,
    boxes_dataset,
    boxes_from_label,
    painted_boxes,
    read_boxes,
)
from medseg.weak.correction import (
    LabelCorrection,
    correction_wrapper,
    train_with_label_correction,
)
from medseg.weak.corrupt import (
    CorruptionConfig,
    corrupt_dataset,
    corrupt_label,
    simulate_raters,
)
from medseg.weak.grow import grow_label, grown_dataset
from medseg.weak.partial import MarginalLoss, annotated_classes, annotated_mask
from medseg.weak.rater_metrics import (
    evaluate_against_raters,
    generalised_energy_distance,
    score_against_raters,
)
from medseg.weak.raters import (
    consensus_dataset,
    rater_frequency,
    read_raters,
    staple_consensus,
    staple_probability,
)
from medseg.weak.sparse import (
    SparseConfig,
    annotated_fraction,
    check_sparse_values,
    click_label,
    make_sparse_dataset,
    naive_label,
    scribble_label,
    slice_label,
    sparse_coverage,
)

__all__ = [
    "CorruptionConfig",
    "LabelBox",
    "LabelCorrection",
    "MarginalLoss",
    "SparseConfig",
    "annotated_classes",
    "annotated_fraction",
    "annotated_mask",
    "box_pseudo_mask",
    "boxes_dataset",
    "boxes_from_label",
    "check_sparse_values",
    "click_label",
    "consensus_dataset",
    "correction_wrapper",
    "corrupt_dataset",
    "corrupt_label",
    "evaluate_against_raters",
    "generalised_energy_distance",
    "grow_label",
    "grown_dataset",
    "make_sparse_dataset",
    "naive_label",
    "painted_boxes",
    "rater_frequency",
    "read_boxes",
    "read_raters",
    "score_against_raters",
    "scribble_label",
    "simulate_raters",
    "slice_label",
    "sparse_coverage",
    "staple_consensus",
    "staple_probability",
    "train_with_label_correction",
]
