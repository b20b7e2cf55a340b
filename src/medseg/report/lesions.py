"""Lesions: connected components of the lesion classes, measured once into a :class:`LesionTable`.

Connectivity is 26 (voxels sharing a face, an edge or a corner belong to one lesion), as in the
dataset fingerprint. Every length is found between voxel centres in physical space (see
:mod:`medseg.report.axes`), so anisotropic spacing and oblique directions give true millimetres,
then extended from edge to edge by the voxel's width along the line (:func:`edge_to_edge`).
The table is a plain typed structure: later stages (text queries) filter it by size, side or
containing structure with :meth:`LesionTable.select` instead of measuring again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import cc3d
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg.io import Image
from medseg.report.axes import longest_diameter, short_axis
from medseg.report.geometry import (
    axial_axis,
    in_plane_basis,
    index_to_physical,
    midline_x_mm,
    physical_to_index,
    to_lps,
)
from medseg.report.measure import Box

Side = Literal["left", "right", "midline"]
Point3 = tuple[float, float, float]
CONNECTIVITY = 26
SIDE_FRACTION = 0.8
"""A lesion is on one side when at least this fraction of its voxels lie there, else midline."""


@dataclass(frozen=True, kw_only=True)
class Lesion:
    """One lesion (connected component of a lesion class) and its measurements.

    Lengths in mm (edge to edge), volume in ml, coordinates in patient LPS (x, y, z) mm. The
    RECIST axes are measured on the axial slice (array index ``axial_slice`` along array axis
    ``axial_axis``) where the lesion's area is largest; their end points are given both in LPS
    and as fractional voxel indices (array order) for drawing. ``structures`` lists the
    non-lesion structures the lesion lies in or touches, most contact first (``structure`` is the
    first, or ``None`` when it touches only background). ``bbox_index`` is ``((start, stop), ...)``
    per array axis.
    """

    lesion_id: int
    label: int
    label_name: str
    voxels: int
    volume_ml: float
    longest_diameter_mm: float
    long_axis_mm: float
    short_axis_mm: float
    axial_axis: int
    axial_slice: int
    long_axis_lps_mm: tuple[Point3, Point3]
    short_axis_lps_mm: tuple[Point3, Point3]
    long_axis_index: tuple[Point3, Point3]
    short_axis_index: tuple[Point3, Point3]
    centroid_lps_mm: Point3
    side: Side
    structure: str | None
    structures: tuple[str, ...]
    touches_border: bool
    mean_uncertainty: float | None
    bbox_index: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class LesionTable:
    """All lesions of a case, ordered by class value then by decreasing volume (ids 1, 2, ...)."""

    lesions: tuple[Lesion, ...] = ()

    def __iter__(self) -> Iterator[Lesion]:
        return iter(self.lesions)

    def __len__(self) -> int:
        return len(self.lesions)

    @property
    def total_volume_ml(self) -> float:
        return float(sum(lesion.volume_ml for lesion in self.lesions))

    def largest(self) -> Lesion | None:
        """The lesion with the largest volume, or ``None`` if there is none."""
        return max(self.lesions, key=lambda lesion: lesion.volume_ml, default=None)

    def by_id(self, lesion_id: int) -> Lesion:
        return next(lesion for lesion in self.lesions if lesion.lesion_id == lesion_id)

    def select(
        self,
        *,
        label: str | int | None = None,
        side: Side | None = None,
        structure: str | None = None,
        min_volume_ml: float | None = None,
        max_volume_ml: float | None = None,
        min_diameter_mm: float | None = None,
    ) -> LesionTable:
        """Lesions matching every given criterion (class name or value, side, touched structure,
        volume range in ml, minimum longest diameter in mm)."""
        kept = [
            lesion
            for lesion in self.lesions
            if (label is None or label in (lesion.label, lesion.label_name))
            and (side is None or lesion.side == side)
            and (structure is None or structure in lesion.structures)
            and (min_volume_ml is None or lesion.volume_ml >= min_volume_ml)
            and (max_volume_ml is None or lesion.volume_ml <= max_volume_ml)
            and (min_diameter_mm is None or lesion.longest_diameter_mm >= min_diameter_mm)
        ]
        return LesionTable(tuple(kept))


@dataclass(frozen=True)
class Component:
    """One connected component: its class, its box in the label map and its mask in that box."""

    label: int
    box: Box
    mask: npt.NDArray[np.bool_]

    def indices(self) -> npt.NDArray[np.int64]:
        """Voxel indices (N, 3) in array order of the whole image."""
        offset = np.array([s.start for s in self.box])
        return np.argwhere(self.mask) + offset


def find_components(
    labels: npt.NDArray[np.integer], boxes: dict[int, Box], lesion_values: frozenset[int]
) -> list[Component]:
    """26-connected components of each lesion class, in class order then decreasing size."""
    out: list[Component] = []
    for value in sorted(lesion_values):
        if value not in boxes:
            continue
        outer = boxes[value]
        cc = cc3d.connected_components(labels[outer] == value, connectivity=CONNECTIVITY)
        parts = []
        for k, box in enumerate(ndimage.find_objects(cc), start=1):
            if box is None:
                continue
            mask = cc[box] == k
            shifted = tuple(
                slice(o.start + b.start, o.start + b.stop) for o, b in zip(outer, box, strict=True)
            )
            parts.append(Component(value, shifted, mask))
        parts.sort(key=lambda c: -int(np.count_nonzero(c.mask)))
        out.extend(parts)
    return out


def measure_lesions(
    image: Image,
    labels: npt.NDArray[np.integer],
    components: list[Component],
    names: dict[int, str],
    lesion_values: frozenset[int],
    *,
    uncertainty: npt.NDArray[np.floating] | None = None,
) -> LesionTable:
    """Measure every component into a :class:`LesionTable` (see :class:`Lesion`)."""
    axis = axial_axis(image)
    midline = midline_x_mm(image)
    basis = in_plane_basis(image, axis)
    in_plane = [image.spacing[a] for a in range(3) if a != axis]
    bin_mm = 0.5 * float(np.hypot(*in_plane))
    voxel_ml = float(np.prod(image.spacing)) / 1000.0
    lesions = []
    for lesion_id, comp in enumerate(components, start=1):
        idx = comp.indices()
        phys = index_to_physical(image, idx)
        surface = comp.mask & ~ndimage.binary_erosion(comp.mask, border_value=0)
        surf_phys = index_to_physical(image, np.argwhere(surface) + [s.start for s in comp.box])
        diameter = longest_diameter(surf_phys)
        per_slice = np.bincount(idx[:, axis])
        slice_index = int(np.argmax(per_slice))
        on_slice = phys[idx[:, axis] == slice_index]
        centre = on_slice.mean(axis=0)
        flat = (on_slice - centre) @ basis.T
        long_ = longest_diameter(flat)
        _, short_ends = short_axis(flat, long_, bin_mm)
        long_mm, long_ends_phys = edge_to_edge(
            image, centre + flat[[long_.start, long_.end]] @ basis
        )
        short_mm, short_ends_phys = edge_to_edge(image, centre + short_ends @ basis)
        longest_mm, _ = edge_to_edge(image, surf_phys[[diameter.start, diameter.end]])
        left = float(np.mean(phys[:, 2] > midline))
        touching = _touching(labels, comp, lesion_values, names)
        lesions.append(
            Lesion(
                lesion_id=lesion_id,
                label=comp.label,
                label_name=names.get(comp.label, str(comp.label)),
                voxels=len(idx),
                volume_ml=len(idx) * voxel_ml,
                longest_diameter_mm=longest_mm,
                long_axis_mm=long_mm,
                short_axis_mm=short_mm,
                axial_axis=axis,
                axial_slice=slice_index,
                long_axis_lps_mm=_pair(to_lps(long_ends_phys)),
                short_axis_lps_mm=_pair(to_lps(short_ends_phys)),
                long_axis_index=_pair(physical_to_index(image, long_ends_phys)),
                short_axis_index=_pair(physical_to_index(image, short_ends_phys)),
                centroid_lps_mm=_point(to_lps(phys.mean(axis=0))),
                side="left"
                if left >= SIDE_FRACTION
                else "right"
                if left <= 1 - SIDE_FRACTION
                else "midline",
                structure=touching[0] if touching else None,
                structures=touching,
                touches_border=any(
                    s.start == 0 or s.stop == n for s, n in zip(comp.box, labels.shape, strict=True)
                ),
                mean_uncertainty=None
                if uncertainty is None
                else float(np.mean(uncertainty[comp.box][comp.mask], dtype=np.float64)),
                bbox_index=tuple((int(s.start), int(s.stop)) for s in comp.box),
            )
        )
    return LesionTable(tuple(lesions))


def edge_to_edge(
    image: Image, ends: npt.NDArray[np.float64]
) -> tuple[float, npt.NDArray[np.float64]]:
    """Length (mm) and end points of a segment between two voxel centres, extended edge to edge.

    The centre-to-centre distance is lengthened by the voxel's width along the segment (half at
    each end), as a reader measuring from edge to edge on screen would. ``ends`` has shape (2, 3)
    in physical (z, y, x) components; a zero-length segment gets the smallest voxel size.
    """
    vector = ends[1] - ends[0]
    length = float(np.linalg.norm(vector))
    if length == 0.0:
        width = min(image.spacing)
        return width, ends.copy()
    unit = vector / length
    width = float(np.sum(np.abs(unit @ image.direction) * np.asarray(image.spacing)))
    return length + width, np.stack([ends[0] - unit * width / 2, ends[1] + unit * width / 2])


def _touching(
    labels: npt.NDArray[np.integer],
    comp: Component,
    lesion_values: frozenset[int],
    names: dict[int, str],
) -> tuple[str, ...]:
    """Names of non-lesion structures in the one-voxel shell around a component, most first."""
    grown = tuple(
        slice(max(s.start - 1, 0), min(s.stop + 1, n))
        for s, n in zip(comp.box, labels.shape, strict=True)
    )
    mask = np.zeros([g.stop - g.start for g in grown], dtype=bool)
    inner = tuple(
        slice(s.start - g.start, s.stop - g.start) for s, g in zip(comp.box, grown, strict=True)
    )
    mask[inner] = comp.mask
    shell = ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), bool)) & ~mask
    values = labels[grown][shell]
    counts = np.bincount(values.astype(np.int64), minlength=1)
    order = np.argsort(-counts, kind="stable")
    return tuple(
        names.get(int(v), str(int(v)))
        for v in order
        if counts[v] > 0 and v != 0 and int(v) not in lesion_values
    )


def _point(values: npt.NDArray[np.float64]) -> Point3:
    return (float(values[0]), float(values[1]), float(values[2]))


def _pair(values: npt.NDArray[np.float64]) -> tuple[Point3, Point3]:
    return (_point(values[0]), _point(values[1]))
