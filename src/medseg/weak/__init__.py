"""Learning from imperfect labels: sparse (scribbles, clicks, slices), noisy, several raters.

See ``docs/weak.md``. The parts:

- :mod:`medseg.weak.sparse`: simulate scribbles / clicks / partial slices with an ``ignore``
  label, check sparse label files, the naive baseline.
"""

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
    "SparseConfig",
    "annotated_fraction",
    "check_sparse_values",
    "click_label",
    "make_sparse_dataset",
    "naive_label",
    "scribble_label",
    "slice_label",
    "sparse_coverage",
]
