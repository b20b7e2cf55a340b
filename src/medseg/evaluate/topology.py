"""Betti numbers of binary masks and their errors (docs/evaluate.md, Definitions).

β0 counts foreground components, β1 tunnels (3D) or holes (2D), β2 cavities (3D). Foreground and
background use complementary connectivities so that the counts obey duality: ``"full"`` is
26-connected foreground with 6-connected background in 3D (8/4 in 2D), ``"face"`` the reverse.
In 3D, β1 follows from the Euler characteristic: χ = β0 − β1 + β2 (scikit-image
``euler_number``). The outside of the array is background.
"""

from __future__ import annotations

from typing import Literal

import cc3d
import numpy as np

from medseg._typing import BoolArray
from medseg.errors import ConfigError
from medseg.evaluate._checks import check_mask, union_bbox

Connectivity = Literal["full", "face"]


def _neighbourhood(ndim: int, kind: Connectivity) -> tuple[int, int]:
    """(foreground, background) connectivity for cc3d."""
    if kind not in ("full", "face"):
        raise ConfigError(f"connectivity must be 'full' or 'face', got {kind!r}")
    full, face = (26, 6) if ndim == 3 else (8, 4)
    return (full, face) if kind == "full" else (face, full)


def _count(mask: BoolArray, connectivity: int) -> int:
    return int(cc3d.connected_components(mask, connectivity=connectivity, return_N=True)[1])


def betti_numbers(mask: BoolArray, *, connectivity: Connectivity = "full") -> tuple[int, ...]:
    """Betti numbers of a mask.

    Parameters
    ----------
    mask : ndarray of bool, shape (Z, Y, X) or (Y, X)
    connectivity : {"full", "face"}
        Foreground connectivity; the background uses the complementary one.

    Returns
    -------
    tuple of int
        ``(β0, β1, β2)`` in 3D, ``(β0, β1)`` in 2D.

    Examples
    --------
    >>> import numpy as np
    >>> ring = np.zeros((5, 5), bool); ring[1:4, 1:4] = True; ring[2, 2] = False
    >>> betti_numbers(ring)
    (1, 1)
    """
    mask = check_mask("mask", mask)
    fg, bg = _neighbourhood(mask.ndim, connectivity)
    box = union_bbox(mask)
    if box is None:
        return (0,) * (mask.ndim)
    padded = np.pad(mask[box], 1)
    b0 = _count(padded, fg)
    background_parts = _count(~padded, bg) - 1  # minus the outside
    if mask.ndim == 2:
        return b0, background_parts
    from skimage.measure import euler_number

    chi = int(euler_number(padded, connectivity=3 if fg == 26 else 1))
    return b0, b0 + background_parts - chi, background_parts


def betti_errors(
    pred: BoolArray, ref: BoolArray, *, connectivity: Connectivity = "full"
) -> dict[str, int]:
    """Absolute Betti number differences per dimension and their sum.

    Returns
    -------
    dict
        ``betti0_error``, ``betti1_error`` (and ``betti2_error`` in 3D) = |β_k(P) − β_k(R)|,
        and ``betti_error``, their sum.
    """
    p = betti_numbers(pred, connectivity=connectivity)
    r = betti_numbers(ref, connectivity=connectivity)
    errors = {f"betti{k}_error": abs(a - b) for k, (a, b) in enumerate(zip(p, r, strict=True))}
    errors["betti_error"] = sum(errors.values())
    return errors
