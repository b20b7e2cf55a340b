"""Per-structure measurements: volume, voxel count, intensity statistics, bounding box.

All functions take the label map as a 3D integer array in array order (Z, Y, X) and find each
label's bounding box once (:func:`label_boxes`), so every statistic reads only the voxels near
its structure: a 512 x 512 x 300 CT with ten organs is measured in about a second.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.io import Image
from medseg.report.geometry import index_to_physical, to_lps

Box = tuple[slice, slice, slice]


@dataclass(frozen=True, kw_only=True)
class IntensityStats:
    """Image values inside a structure. ``unit`` is ``"HU"`` for CT, otherwise ``"a.u."``."""

    mean: float
    median: float
    std: float
    p5: float
    p95: float
    unit: str


@dataclass(frozen=True, kw_only=True)
class Structure:
    """Measurements of one label value (an organ, a tissue, or all voxels of a lesion class).

    ``bbox_index`` is ``((start, stop), ...)`` per array axis (z, y, x), stop exclusive;
    ``bbox_size_mm`` its edge-to-edge size along those axes (voxels x spacing). ``bbox_lps_min_mm``
    and ``bbox_lps_max_mm`` bound the structure's voxel centres in patient LPS (x, y, z) mm.
    ``intensity`` maps channel name to statistics; ``mean_uncertainty`` is the mean of the
    uncertainty map inside the structure when one was given. Empty structures have 0 voxels and
    ``None`` for every geometric and intensity field.
    """

    label: int
    name: str
    is_lesion_class: bool
    voxels: int
    volume_ml: float
    bbox_index: tuple[tuple[int, int], ...] | None
    bbox_size_mm: tuple[float, ...] | None
    bbox_lps_min_mm: tuple[float, float, float] | None
    bbox_lps_max_mm: tuple[float, float, float] | None
    intensity: dict[str, IntensityStats]
    mean_uncertainty: float | None


def label_boxes(labels: npt.NDArray[np.integer]) -> dict[int, Box]:
    """Bounding box (tuple of slices) of every non-zero label value present, in one pass."""
    return {
        value: box
        for value, box in enumerate(ndimage.find_objects(labels), start=1)
        if box is not None
    }


def measure_structures(
    image: Image,
    labels: npt.NDArray[np.integer],
    names: dict[int, str],
    boxes: dict[int, Box],
    *,
    lesion_values: frozenset[int],
    channel_names: dict[int, str],
    hounsfield: bool,
    uncertainty: npt.NDArray[np.floating] | None = None,
) -> list[Structure]:
    """Measure every named foreground label, present or not.

    Parameters
    ----------
    image : Image
        ``(C, Z, Y, X)`` intensities with the geometry of ``labels``.
    labels : ndarray of int, shape (Z, Y, X)
    names : dict of int to str
        Label value -> name, background excluded.
    boxes : dict
        From :func:`label_boxes`.
    lesion_values : frozenset of int
        Label values whose components are lesions (flagged ``is_lesion_class``).
    channel_names : dict of int to str
        Channel index -> name for the intensity statistics.
    hounsfield : bool
        True if the image is CT in Hounsfield units (sets the unit, values are not changed).
    uncertainty : ndarray of float, shape (Z, Y, X), optional

    Returns
    -------
    list of Structure
        In label-value order.
    """
    voxel_ml = math.prod(image.spacing) / 1000.0
    unit = "HU" if hounsfield else "a.u."
    out = []
    for value, name in sorted(names.items()):
        box = boxes.get(value)
        if box is None:
            out.append(_empty(value, name, value in lesion_values))
            continue
        mask = labels[box] == value
        count = int(np.count_nonzero(mask))
        intensity = {
            channel_names.get(c, str(c)): _stats(image.array[c][box][mask], unit)
            for c in range(image.num_channels)
        }
        lps = to_lps(index_to_physical(image, _box_corners(box)))
        out.append(
            Structure(
                label=value,
                name=name,
                is_lesion_class=value in lesion_values,
                voxels=count,
                volume_ml=count * voxel_ml,
                bbox_index=tuple((int(s.start), int(s.stop)) for s in box),
                bbox_size_mm=tuple(
                    float((s.stop - s.start) * sp) for s, sp in zip(box, image.spacing, strict=True)
                ),
                bbox_lps_min_mm=_triple(lps.min(axis=0)),
                bbox_lps_max_mm=_triple(lps.max(axis=0)),
                intensity=intensity,
                mean_uncertainty=None
                if uncertainty is None
                else float(np.mean(uncertainty[box][mask], dtype=np.float64)),
            )
        )
    return out


def _stats(values: npt.NDArray[np.generic], unit: str) -> IntensityStats:
    values = values.astype(np.float64, copy=False)
    p5, median, p95 = np.percentile(values, [5, 50, 95])
    return IntensityStats(
        mean=float(values.mean()),
        median=float(median),
        std=float(values.std()),
        p5=float(p5),
        p95=float(p95),
        unit=unit,
    )


def _box_corners(box: Box) -> npt.NDArray[np.float64]:
    """The 8 corner voxel centres of a box, shape (8, 3), array order."""
    return np.array(list(itertools.product(*[(s.start, s.stop - 1) for s in box])), float)


def _triple(values: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


def _empty(value: int, name: str, is_lesion: bool) -> Structure:
    return Structure(
        label=value,
        name=name,
        is_lesion_class=is_lesion,
        voxels=0,
        volume_ml=0.0,
        bbox_index=None,
        bbox_size_mm=None,
        bbox_lps_min_mm=None,
        bbox_lps_max_mm=None,
        intensity={},
        mean_uncertainty=None,
    )
