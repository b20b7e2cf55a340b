"""What a query is resolved against: a label map measured once into a :class:`Scene`.

The lesions come from the clinical report's lesion table (:mod:`medseg.report.lesions`: volume,
diameters, side from the direction matrix, containing structure, centroid), computed once when
the scene is built. Structures (non-lesion classes) are instances too, measured lazily and
cached: voxel count, centroid, side, surface. Every position is physical (patient LPS), found
through the image's direction matrix, so an image stored flipped answers the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree

from medseg.io import Image
from medseg.report.findings import PriorScan, label_array, lesion_values_from_names
from medseg.report.geometry import index_to_physical, midline_x_mm, to_lps
from medseg.report.lesions import (
    SIDE_FRACTION,
    Component,
    Lesion,
    LesionTable,
    find_components,
    measure_lesions,
)
from medseg.report.longitudinal import Change, compare_with_prior
from medseg.report.measure import Box
from medseg.text.pieces import Classes
from medseg.text.query import QueryError, Side


@dataclass(frozen=True)
class Instance:
    """One selectable thing: a lesion of the table, or a whole structure (optionally one side).

    ``clip`` keeps only the structure's voxels on that side of the patient's midline ("the left
    lung" when the model has one class for both lungs); ``group`` lists the classes that make one
    structure together ("the left lung" when the model has a class per lobe).
    """

    label: int
    name: str
    lesion: Lesion | None = None
    clip: Side | None = None
    group: tuple[int, ...] = ()

    @property
    def key(self) -> tuple[int, int, str, tuple[int, ...]]:
        lesion_id = self.lesion.lesion_id if self.lesion else 0
        return (self.label, lesion_id, self.clip or "", self.group)


@dataclass
class Scene:
    """A segmentation with its lesion table and lazily measured structures.

    Build it with :func:`build_scene`. ``labels`` is the ``(Z, Y, X)`` label array,
    ``components[k]`` the voxels of ``table.lesions[k]``.
    """

    geometry: Image
    labels: npt.NDArray[np.integer]
    boxes: dict[int, Box]
    classes: Classes
    table: LesionTable
    components: list[Component]
    change: Change | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    # -- instances ------------------------------------------------------------------------
    def instances(self, labels: tuple[int, ...], group: str | None = None) -> list[Instance]:
        """Lesions of the lesion classes among ``labels`` and one instance per structure, or,
        with ``group`` (its name), the structures together as one instance."""
        out: list[Instance] = []
        names = self.classes.names
        present = tuple(v for v in labels if v in self.boxes)
        if group is not None and present:
            return [Instance(present[0], group, group=present)]
        for value in labels:
            if value in self.classes.lesion_values:
                out += [
                    Instance(value, names[value], lesion)
                    for lesion in self.table
                    if lesion.label == value
                ]
            elif value in self.boxes:
                out.append(Instance(value, names[value]))
        return out

    def mask(self, inst: Instance) -> tuple[Box, npt.NDArray[np.bool_]]:
        """The instance's box in the label map and its boolean mask inside that box."""
        if inst.lesion is not None:
            comp = self.components[inst.lesion.lesion_id - 1]
            return comp.box, comp.mask
        return self._cached(("mask", inst.key), lambda: self._structure_mask(inst))

    def voxels(self, inst: Instance) -> int:
        if inst.lesion is not None:
            return inst.lesion.voxels
        return self._cached(("voxels", inst.key), lambda: int(np.count_nonzero(self.mask(inst)[1])))

    def volume_ml(self, inst: Instance) -> float:
        if inst.lesion is not None:
            return inst.lesion.volume_ml
        return self.voxels(inst) * float(np.prod(self.geometry.spacing)) / 1000.0

    def centroid_lps(self, inst: Instance) -> npt.NDArray[np.float64]:
        """Centroid in patient LPS (x, y, z) mm."""
        if inst.lesion is not None:
            return np.asarray(inst.lesion.centroid_lps_mm)

        def compute() -> npt.NDArray[np.float64]:
            box, mask = self.mask(inst)
            mean_index = np.argwhere(mask).mean(axis=0) + [s.start for s in box]
            return to_lps(index_to_physical(self.geometry, mean_index[None, :]))[0]

        return self._cached(("centroid", inst.key), compute)

    def side(self, inst: Instance) -> Side:
        """``left``/``right`` when at least 80 % of the voxels lie on that side, else midline."""
        if inst.lesion is not None:
            return inst.lesion.side
        if inst.clip is not None:
            return inst.clip

        def compute() -> Side:
            box, mask = self.mask(inst)
            left = float(np.mean(self._x_lps(box)[mask] > self.midline_x))
            return (
                "left"
                if left >= SIDE_FRACTION
                else "right"
                if left <= 1 - SIDE_FRACTION
                else "midline"
            )

        return self._cached(("side", inst.key), compute)

    def structure_names(self, inst: Instance) -> tuple[str, ...]:
        """Structures a lesion lies in or touches, most contact first (from the lesion table)."""
        return inst.lesion.structures if inst.lesion is not None else ()

    # -- geometry -------------------------------------------------------------------------
    @property
    def midline_x(self) -> float:
        return self._cached("midline", lambda: midline_x_mm(self.geometry))

    @property
    def centre_lps(self) -> npt.NDArray[np.float64]:
        """Centre of the field of view in LPS (x, y, z) mm: the reference of "anterior" etc."""

        def compute() -> npt.NDArray[np.float64]:
            centre = (np.asarray(self.labels.shape, dtype=np.float64) - 1.0) / 2.0
            return to_lps(index_to_physical(self.geometry, centre[None, :]))[0]

        return self._cached("centre", compute)

    def reference_centroid(self, labels: tuple[int, ...]) -> npt.NDArray[np.float64]:
        """Centroid (LPS) of all voxels of the given classes together."""

        def compute() -> npt.NDArray[np.float64]:
            total, weighted = 0, np.zeros(3)
            for inst in self.instances_of_structures(labels):
                n = self.voxels(inst)
                total += n
                weighted += n * self.centroid_lps(inst)
            return weighted / max(total, 1)

        return self._cached(("refcentroid", labels), compute)

    def instances_of_structures(self, labels: tuple[int, ...]) -> list[Instance]:
        """Every class of ``labels`` as one whole instance (lesion classes included)."""
        return [Instance(v, self.classes.names[v]) for v in labels if v in self.boxes]

    def distance_mm(self, inst: Instance, labels: tuple[int, ...]) -> float:
        """Smallest distance (mm) between the voxel centres of the instance's surface and the
        surface of the classes ``labels``; ``inf`` when those classes are empty."""
        tree = self._cached(("tree", labels), lambda: self._surface_tree(labels))
        if tree is None:
            return float("inf")
        points = self._cached(("surface", inst.key), lambda: self._surface(inst))
        distances, _ = tree.query(points, k=1)
        return float(np.min(distances))

    @property
    def touch_mm(self) -> float:
        """Largest distance between the centres of two touching voxels (26-neighbours)."""
        return float(np.linalg.norm(self.geometry.spacing)) + 1e-6

    # -- internals ------------------------------------------------------------------------
    def _cached(self, key: Any, compute: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _x_lps(self, box: Box) -> npt.NDArray[np.float64]:
        """LPS x (mm) of every voxel of ``box``: a separable sum over the three array axes."""
        g = self.geometry
        x = np.full([s.stop - s.start for s in box], g.origin[2], dtype=np.float64)
        for axis, s in enumerate(box):
            shape = [1, 1, 1]
            shape[axis] = s.stop - s.start
            step = g.direction[2, axis] * g.spacing[axis]
            x = x + (np.arange(s.start, s.stop, dtype=np.float64) * step).reshape(shape)
        return x

    def _structure_mask(self, inst: Instance) -> tuple[Box, npt.NDArray[np.bool_]]:
        if inst.group:
            boxes = [self.boxes[v] for v in inst.group]
            box = tuple(
                slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes))
                for a in range(3)
            )
            mask = np.isin(self.labels[box], inst.group)
        else:
            box = self.boxes[inst.label]
            mask = self.labels[box] == inst.label
        if inst.clip is not None:
            x = self._x_lps(box)
            if inst.clip == "left":
                mask &= x > self.midline_x
            elif inst.clip == "right":
                mask &= x <= self.midline_x
        return box, mask

    def _surface(self, inst: Instance) -> npt.NDArray[np.float64]:
        box, mask = self.mask(inst)
        surface = mask & ~ndimage.binary_erosion(mask, border_value=0)
        return index_to_physical(self.geometry, np.argwhere(surface) + [s.start for s in box])

    def _surface_tree(self, labels: tuple[int, ...]) -> cKDTree | None:
        parts = [self._surface(inst) for inst in self.instances_of_structures(labels)]
        parts = [p for p in parts if len(p)]
        return cKDTree(np.concatenate(parts)) if parts else None


def build_scene(
    segmentation: Image,
    *,
    names: dict[int, str],
    lesion_labels: tuple[str | int, ...] | None = None,
    prior: PriorScan | None = None,
    source: str = "segmentation",
) -> Scene:
    """Measure a segmentation once for text queries.

    Parameters
    ----------
    segmentation : Image
        ``(1, Z, Y, X)`` integer label map; its geometry places every voxel in patient space.
    names : dict of int to str
        Label value -> class name (a model's ``dataset.json``).
    lesion_labels : tuple of str or int, optional
        Lesion classes; default: names that say lesion, tumour, metastasis, nodule...
    prior : PriorScan, optional
        The earlier time point, for "new" lesions.
    source : str
        The segmentation's file name, for error messages.

    Returns
    -------
    Scene
    """
    labels, boxes = label_array(segmentation, names, source)
    lesion_values = lesion_values_from_names(names, lesion_labels)
    components = find_components(labels, boxes, lesion_values)
    table = measure_lesions(segmentation, labels, components, names, lesion_values)
    change = None
    if prior is not None:
        prior_labels, prior_boxes = label_array(prior.segmentation, names, "prior segmentation")
        prior_components = find_components(prior_labels, prior_boxes, lesion_values)
        prior_table = measure_lesions(
            prior.segmentation, prior_labels, prior_components, names, lesion_values
        )
        change = compare_with_prior(
            segmentation, components, table, prior.segmentation, prior_components, prior_table
        )
    return Scene(
        geometry=segmentation,
        labels=labels,
        boxes=boxes,
        classes=Classes(dict(names), lesion_values),
        table=table,
        components=components,
        change=change,
    )


def new_lesion_ids(scene: Scene) -> set[int]:
    """Ids of current lesions that overlap no prior lesion.

    Raises
    ------
    QueryError
        The scene was built without a prior scan.
    """
    if scene.change is None:
        raise QueryError(
            "'new' compares with a prior scan, and none was given",
            suggestion="pass the prior image and segmentation (--prior IMAGE SEGMENTATION)",
        )
    return {i for m in scene.change.matches if m.status == "new" for i in m.current_ids}
