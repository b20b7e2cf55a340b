"""Random training patches with foreground oversampling, read from the preprocessed cache.

As in nnU-Net, the last ``batch_size - round(batch_size * (1 - oversample_foreground))`` samples
of every batch are forced to contain foreground: a case is drawn, then one of the foreground
classes present in it (each class equally likely whatever its voxel count, so rare classes are
favoured), then one voxel of that class, and the patch is placed so that the voxel lies inside
it (centred where the image allows). With ``oversample_labels`` (the plan's rare classes, e.g.
lesions) forced samples are centred on *connected components* of those labels instead: one
component is drawn uniformly among all components of all cases (26-connected), then one of its
voxels, so a 5-voxel lesion is the centre as often as a 500-voxel one and a case with many
lesions is visited more often than a case with one. If no case has any, forced samples fall back
to any foreground. The other samples are placed uniformly. With ``unlabelled_ids`` (semi-supervised
training) ``unlabelled_per_batch`` samples from those cases, placed uniformly, follow the
labelled ones; their label patches are all 0.

When the dataset declares partial annotations (``annotated``) or has unlabelled cases, each batch
carries an annotated-class mask (see :func:`annotated_rows`) for the marginal loss
(:mod:`medseg.train.marginal`). Patches that reach past the image are
zero-padded (label 0), so images smaller than the patch work. For a planar configuration (2D
patch) one slice along axis ``plane`` is drawn per sample; with ``neighbours`` k > 0 (2.5D) the
image holds that slice's 2k + 1 neighbourhood of every channel (:mod:`medseg.train.planar`) and
the label is the centre slice's.

All randomness comes from the ``numpy.random.Generator`` passed in: the same generator state
gives the same batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from medseg.train.planar import plane_order, slice_with_neighbours, to_plane


class CaseSource(Protocol):
    """What the sampler needs from a case cache (``medseg.preprocess.CaseCache`` fits)."""

    def load(self, case_id: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray, Any]:
        """``(image (C, Z, Y, X) float32, label (1, Z, Y, X) int, properties)``."""

    def foreground_locations(self, case_id: str) -> dict[int, np.ndarray]:
        """Label value -> ``(N, 3)`` int array of (z, y, x) voxel positions of that label."""


def forced_count(batch_size: int, oversample_foreground: float) -> int:
    """How many samples of a batch must contain foreground (nnU-Net's rounding rule)."""
    return batch_size - round(batch_size * (1 - oversample_foreground))


def crop_padded(
    array: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float = 0
) -> np.ndarray:
    """Crop ``array[:, start:start+size]`` over the trailing spatial axes, padding outside.

    Parameters
    ----------
    array : ndarray, shape (C, *spatial)
    start : sequence of int
        First voxel per spatial axis; may be negative or past the end.
    size : sequence of int
        Output spatial shape.
    fill : float
        Value of voxels outside ``array``.

    Returns
    -------
    ndarray, shape (C, *size), same dtype as ``array`` (a copy).
    """
    spatial = array.shape[1:]
    src, dst = [slice(None)], [slice(None)]
    for s, n, dim in zip(start, size, spatial, strict=True):
        lo, hi = max(s, 0), min(s + n, dim)
        src.append(slice(lo, max(hi, lo)))
        dst.append(slice(lo - s, lo - s + max(hi - lo, 0)))
    out = np.full((array.shape[0], *size), fill, dtype=array.dtype)
    out[tuple(dst)] = array[tuple(src)]
    return out


def split_components(voxels: np.ndarray) -> list[np.ndarray]:
    """Split voxel positions into 26-connected components.

    Parameters
    ----------
    voxels : ndarray of int, shape (N, 3)
        (z, y, x) positions of one label's voxels.

    Returns
    -------
    list of ndarray, shape (N_i, 3)
        One array per component, in cc3d's (scan) order; empty input gives an empty list.
    """
    import cc3d

    if len(voxels) == 0:
        return []
    low = voxels.min(axis=0)
    local = voxels - low
    mask = np.zeros(tuple(local.max(axis=0) + 1), dtype=bool)
    mask[tuple(local.T)] = True
    ids = cc3d.connected_components(mask, connectivity=26)[tuple(local.T)]
    order = np.argsort(ids, kind="stable")
    cuts = np.flatnonzero(np.diff(ids[order])) + 1
    return np.split(voxels[order], cuts)


def annotated_rows(
    case_ids: Sequence[str],
    declared: Mapping[str, Sequence[int]],
    num_classes: int,
    unlabelled: Sequence[str] = (),
) -> npt.NDArray[np.bool_]:
    """Which classes each sample annotates, one row per sample.

    Parameters
    ----------
    case_ids : sequence of str
        The case of each sample.
    declared : mapping of str to sequence of int
        Annotated foreground classes of the partially labelled cases; other cases annotate all.
    num_classes : int
        Network outputs, background included.
    unlabelled : sequence of str
        Cases without labels: their rows are all False.

    Returns
    -------
    ndarray of bool, shape (len(case_ids), num_classes)
    """
    rows = np.ones((len(case_ids), num_classes), dtype=bool)
    for row, case_id in enumerate(case_ids):
        if case_id in unlabelled:
            rows[row] = False
        elif case_id in declared:
            rows[row, 1:] = False
            rows[row, list(declared[case_id])] = True
    return rows


@dataclass(frozen=True)
class Batch:
    """A batch of patches.

    Attributes
    ----------
    image : ndarray of float32, shape (B, C, *patch)
    label : ndarray of int16, shape (B, 1, *patch)
    forced : ndarray of bool, shape (B,)
        Which samples were forced to contain foreground.
    annotated : ndarray of bool, shape (B, num_classes), optional
        Which classes each sample annotates (:func:`annotated_rows`); only for datasets with
        partially labelled or unlabelled cases.
    cases : tuple of str
        The case each sample was cut from.
    """

    image: npt.NDArray[np.float32]
    label: npt.NDArray[np.int16]
    forced: npt.NDArray[np.bool_]
    annotated: npt.NDArray[np.bool_] | None = None
    cases: tuple[str, ...] = ()


class PatchSampler:
    """Draw batches of patches from cached cases.

    Parameters
    ----------
    source : CaseSource
        The preprocessed cases.
    case_ids : sequence of str
        Cases to draw from (a fold's training or validation cases).
    patch_size : sequence of int
        Patch shape, (z, y, x) for 3D or (y, x) for 2D slices along axis 0.
    batch_size : int
    oversample_foreground : float
        Fraction of each batch forced to contain foreground (see :func:`forced_count`).
    foreground_labels : sequence of int
        Label values that count as foreground (background and ignore excluded).
    oversample_labels : sequence of int, optional
        Labels forced samples are centred on (default: any foreground label).
    annotated : mapping of str to sequence of int, optional
        Annotated foreground classes of partially labelled cases; when given (or with
        ``unlabelled_ids``) batches carry an annotated-class mask of ``num_classes`` columns.
    num_classes : int
        Network outputs, background included (needed with ``annotated``/``unlabelled_ids``).
    unlabelled_ids : sequence of str
        Cases without labels (their cached label is all 0), for semi-supervised training.
    unlabelled_per_batch : int
        Unlabelled samples added after the ``batch_size`` labelled ones.
    raters : mapping of str to sequence of ndarray, optional
        Several raters' label maps per case, each ``(1, Z, Y, X)`` on the case's grid: a patch
        of such a case takes its label from one of them, drawn uniformly (rater sampling).
        Foreground oversampling still uses the case's own label.
    plane : int
        2D patches: the spatial axis slices are cut along (0, 1 or 2); the patch lists the two
        other axes in their order.
    neighbours : int
        2D patches: slices on each side of the centre slice stacked as channels (2.5D); the
        image then has ``C * (2 * neighbours + 1)`` channels.
    """

    def __init__(
        self,
        source: CaseSource,
        case_ids: Sequence[str],
        patch_size: Sequence[int],
        batch_size: int,
        oversample_foreground: float,
        *,
        foreground_labels: Sequence[int],
        oversample_labels: Sequence[int] = (),
        annotated: Mapping[str, Sequence[int]] | None = None,
        num_classes: int = 0,
        unlabelled_ids: Sequence[str] = (),
        unlabelled_per_batch: int = 0,
        raters: Mapping[str, Sequence[np.ndarray]] | None = None,
        plane: int = 0,
        neighbours: int = 0,
    ) -> None:
        if not case_ids:
            raise ValueError("PatchSampler needs at least one case")
        if len(patch_size) == 3 and (plane or neighbours):
            raise ValueError("plane and neighbours apply to 2D patches only")
        self.order = plane_order(plane)
        self.plane = plane
        self.neighbours = neighbours
        self.annotated = None if annotated is None and not unlabelled_ids else dict(annotated or {})
        self.num_classes = num_classes
        self.unlabelled_ids = list(unlabelled_ids)
        self.unlabelled_per_batch = unlabelled_per_batch if self.unlabelled_ids else 0
        self.raters = {k: list(v) for k, v in (raters or {}).items() if len(v)}
        self.source = source
        self.case_ids = list(case_ids)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.batch_size = batch_size
        self.n_forced = forced_count(batch_size, oversample_foreground)
        self.foreground_labels = tuple(foreground_labels)
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._locations = {case_id: self._read_locations(case_id) for case_id in self.case_ids}
        targets = set(oversample_labels) & set(self.foreground_labels)
        self._components = [
            (case_id, voxels)
            for case_id in self.case_ids
            for value in sorted(targets & set(self._locations[case_id]))
            for voxels in split_components(self._locations[case_id][value])
        ]

    def _read_locations(self, case_id: str) -> dict[int, np.ndarray]:
        found = self.source.foreground_locations(case_id)
        return {
            int(k): np.asarray(v).reshape(-1, 3)
            for k, v in found.items()
            if int(k) in self.foreground_labels and len(v)
        }

    def sample(self, rng: np.random.Generator) -> Batch:
        """One batch; the last ``n_forced`` samples contain foreground where a case has any."""
        images, labels, forced, cases = [], [], [], []
        for i in range(self.batch_size):
            force = i >= self.batch_size - self.n_forced
            if force and self._components:
                case_id, voxels = self._components[int(rng.integers(len(self._components)))]
                centre: np.ndarray | None = voxels[int(rng.integers(len(voxels)))]
            else:
                case_id = self.case_ids[int(rng.integers(len(self.case_ids)))]
                centre = self._foreground_voxel(case_id, rng) if force else None
            image, label = self._case(case_id)
            if case_id in self.raters:
                options = self.raters[case_id]
                label = options[int(rng.integers(len(options)))]
            patch_image, patch_label = self._crop(image, label, centre, rng)
            images.append(patch_image)
            labels.append(patch_label)
            forced.append(centre is not None)
            cases.append(case_id)
        for _ in range(self.unlabelled_per_batch):
            case_id = self.unlabelled_ids[int(rng.integers(len(self.unlabelled_ids)))]
            patch_image, patch_label = self._crop(*self._case(case_id), None, rng)
            images.append(patch_image)
            labels.append(np.zeros_like(patch_label))
            forced.append(False)
            cases.append(case_id)
        rows = None
        if self.annotated is not None:
            rows = annotated_rows(cases, self.annotated, self.num_classes, self.unlabelled_ids)
        return Batch(
            image=np.stack(images).astype(np.float32, copy=False),
            label=np.stack(labels).astype(np.int16, copy=False),
            forced=np.array(forced),
            annotated=rows,
            cases=tuple(cases),
        )

    def _case(self, case_id: str) -> tuple[np.ndarray, np.ndarray]:
        if case_id not in self._arrays:
            self._arrays[case_id] = self.source.load(case_id, mmap=True)[:2]
        return self._arrays[case_id]

    def _foreground_voxel(self, case_id: str, rng: np.random.Generator) -> np.ndarray | None:
        locations = self._locations[case_id]
        classes = sorted(locations)
        if not classes:
            return None
        voxels = locations[classes[int(rng.integers(len(classes)))]]
        return voxels[int(rng.integers(len(voxels)))]

    def _crop(
        self,
        image: np.ndarray,
        label: np.ndarray,
        centre: np.ndarray | None,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        if len(self.patch_size) == 2:
            image, label = to_plane(image, self.plane), to_plane(label, self.plane)
            centre = None if centre is None else np.asarray(centre)[list(self.order)]
            z = int(centre[0]) if centre is not None else int(rng.integers(image.shape[1]))
            image, label = slice_with_neighbours(image, z, self.neighbours), label[:, z]
            centre = None if centre is None else centre[1:]
        spatial = image.shape[1:]
        start = []
        for axis, (n, p) in enumerate(zip(spatial, self.patch_size, strict=True)):
            lo, hi = min(0, n - p), max(0, n - p)
            s = int(centre[axis]) - p // 2 if centre is not None else int(rng.integers(lo, hi + 1))
            start.append(min(max(s, lo), hi))
        return crop_padded(image, start, self.patch_size), crop_padded(
            label, start, self.patch_size
        )
