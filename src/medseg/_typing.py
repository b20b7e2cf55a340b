"""Type aliases shared across medseg.

Axis order everywhere is array order: ``(C, Z, Y, X)`` for 3D images and ``(C, Y, X)`` for 2D;
spacing and origin follow the spatial part of that order and are in millimetres.
"""

from __future__ import annotations

from os import PathLike
from typing import Union

import numpy as np
import numpy.typing as npt

PathLikeStr = Union[str, "PathLike[str]"]
SpacingMM = tuple[float, ...]
"""Voxel size in mm, one value per spatial axis, in array axis order (z, y, x)."""
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.integer]
