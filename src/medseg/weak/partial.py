"""Partially labelled datasets: where the declaration and the marginal loss live.

Cases that annotate only some classes are declared in ``dataset.json`` (``annotated_classes``,
read and checked by :func:`medseg.data.partial.annotated_classes`) and trained with the marginal
loss (:class:`medseg.train.marginal.MarginalLoss`), which ``medseg train`` selects by itself when
the dataset declares partial annotations. Both sit below this package so that training can use
them (training must not import :mod:`medseg.weak`, which imports training); they are re-exported
here with the other weak-supervision tools.
"""

from __future__ import annotations

from medseg.data.partial import annotated_classes, write_partial_declaration
from medseg.train.marginal import MarginalLoss, annotated_mask

__all__ = ["MarginalLoss", "annotated_classes", "annotated_mask", "write_partial_declaration"]
