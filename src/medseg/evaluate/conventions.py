"""Empty-mask conventions: medseg's own, and those of MONAI and nnU-Net, to compare numbers.

The metrics differ between tools only where a mask is empty; a row's ``status`` says which case
it is (``both_empty``, ``ref_empty``, ``pred_empty``). :func:`apply_empty_convention` rewrites
those rows' values the way the named tool reports them (docs/evaluate.md, "Empty masks", has
the table):

* ``medseg``: Dice, IoU, NSD ``nan`` when both masks are empty, 0 when one is; HD, HD95, ASSD
  ``nan`` when both are empty, ``inf`` when one is.
* ``nnunet``: the same Dice and IoU (nnU-Net reports no distances; those keep medseg's values).
* ``monai``: Dice and IoU ``nan`` whenever the reference is empty; HD95 ``nan`` whenever a mask
  is empty (the percentile of an infinite distance list); HD, ASSD and NSD as medseg.
* ``monai-keep-empty``: as ``monai``, but Dice and IoU 1 when both are empty and 0 when only
  the reference is.

``monai`` is MONAI's default ``ignore_empty=True`` (``DiceMetric``, ``MeanIoU``) with its
``HausdorffDistanceMetric``, ``SurfaceDistanceMetric(symmetric=True)`` and ``SurfaceDiceMetric``
as of MONAI 1.6; ``monai-keep-empty`` is ``ignore_empty=False``. nnU-Net v2
(``evaluate_predictions.compute_metrics``) reports Dice and IoU only, with medseg's rule; its
other columns keep medseg's values. The confusion-matrix ratios (precision, sensitivity, ...)
are ``nan`` for a zero denominator in every convention, as in MONAI.
"""

from __future__ import annotations

from typing import Literal, get_args

EmptyConvention = Literal["medseg", "nnunet", "monai", "monai-keep-empty"]
EMPTY_CONVENTIONS: tuple[str, ...] = get_args(EmptyConvention)

_NAN = float("nan")


def apply_empty_convention(
    row: dict[str, float | str], convention: EmptyConvention, hd_column: str = "hd95"
) -> dict[str, float | str]:
    """``row`` (one class of one case, medseg's values) as ``convention`` reports it.

    Parameters
    ----------
    row : dict
        A row of :func:`medseg.evaluate.evaluate_case`, with its ``status``.
    convention : {"medseg", "nnunet", "monai", "monai-keep-empty"}
    hd_column : str
        Name of the percentile Hausdorff column (``MetricOptions.hd_column``).

    Returns
    -------
    dict
        A new row; ``row`` itself is not changed.
    """
    if convention not in EMPTY_CONVENTIONS:
        from medseg.errors import ConfigError

        raise ConfigError(
            f"empty-mask convention {convention!r}: use one of {', '.join(EMPTY_CONVENTIONS)}"
        )
    status = row["status"]
    out = dict(row)
    if convention in ("medseg", "nnunet") or status == "ok":
        return out
    keep_empty = convention == "monai-keep-empty"
    overlap = {"both_empty": 1.0 if keep_empty else _NAN, "ref_empty": 0.0 if keep_empty else _NAN}
    if status in overlap:
        out["dice"] = out["iou"] = overlap[status]
    if hd_column in out:
        out[hd_column] = _NAN
    return out
