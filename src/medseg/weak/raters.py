"""Several raters per case: reading their label files, STAPLE consensus, agreement maps.

Layout (nnU-Net raw, see ``docs/weak.md``): beside or instead of ``labelsTr/<case>.nii.gz``,
one file per observer, ``labelsTr/<case>_rater<k>.nii.gz`` (``k`` = 0, 1, ...; any integers,
sorted numerically). Every rater file of a case must share the case image's voxel grid. A case
whose raters all drew an empty mask (a negative frame) is valid.

Consensus is STAPLE (Warfield et al., IEEE TMI 2004), computed by SimpleITK:
:func:`staple_probability` runs ``STAPLEImageFilter`` on binary masks (the probability of each
voxel being object, and each rater's sensitivity and specificity); :func:`staple_consensus`
runs ``MultiLabelSTAPLEImageFilter`` on label maps and resolves the voxels it leaves undecided
by majority vote (ties: the lower label). :func:`rater_frequency` gives, per class, the
fraction of raters marking each voxel: the soft target and the reference of calibration.

Arrays are spatial, shape (Z, Y, X) or (Y, X); a stack of raters is (R, Z, Y, X).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.data.dataset import Case, Dataset
from medseg.errors import DatasetError, GeometryError
from medseg.io import Image, geometry_differences, read_image
from medseg.weak._derive import ProgressCallback, derive_dataset


def read_raters(case: Case, reference: Image | None = None) -> tuple[np.ndarray, Image]:
    """Read every rater's label map of ``case``, checking that they share one voxel grid.

    Parameters
    ----------
    case : Case
        A case with ``rater_paths``.
    reference : Image, optional
        Image whose grid the raters must match (default: the first rater file).

    Returns
    -------
    raters : ndarray of int16, shape (R, Z, Y, X)
    first : Image
        The first rater's label image (its geometry is the raters' grid).

    Raises
    ------
    DatasetError
        The case has no rater files.
    GeometryError
        A rater file's shape, spacing, origin or direction differs, naming both files.
    """
    if not case.rater_paths:
        raise DatasetError(
            f"case {case.case_id!r} has no rater files; name them labelsTr/"
            f"{case.case_id}_rater<k><file ending>"
        )
    images = [read_image(p) for p in case.rater_paths]
    base = reference if reference is not None else images[0]
    base_name = "the case image" if reference is not None else str(case.rater_paths[0])
    for path, image in zip(case.rater_paths, images, strict=True):
        problems = geometry_differences(image, base)
        if problems:
            raise GeometryError(
                f"{path}: rater label does not match {base_name} ({'; '.join(problems)}); "
                "every rater must annotate the case image's voxel grid"
            )
    return np.stack([np.asarray(i.array[0]).astype(np.int16) for i in images]), images[0]


def staple_probability(
    masks: np.ndarray, *, max_iterations: int = 100
) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...]]:
    """Binary STAPLE: probability that each voxel is object, given every rater's mask.

    Parameters
    ----------
    masks : ndarray of bool, shape (R, Z, Y, X) or (R, Y, X)
        One mask per rater.
    max_iterations : int
        EM iterations at most.

    Returns
    -------
    probability : ndarray of float32, shape (Z, Y, X) or (Y, X)
    sensitivity, specificity : tuple of float
        Each rater's estimated performance. When no rater marked anything the probability is 0
        everywhere and the estimates are NaN (STAPLE has nothing to fit).
    """
    import SimpleITK as sitk

    masks = np.asarray(masks, dtype=bool)
    if not masks.any():
        nan = (float("nan"),) * len(masks)
        return np.zeros(masks.shape[1:], np.float32), nan, nan
    staple = sitk.STAPLEImageFilter()
    staple.SetForegroundValue(1)
    staple.SetMaximumIterations(max_iterations)
    images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks]
    probability = sitk.GetArrayFromImage(staple.Execute(images)).astype(np.float32)
    return probability, tuple(staple.GetSensitivity()), tuple(staple.GetSpecificity())


def staple_consensus(raters: np.ndarray, *, max_iterations: int = 100) -> np.ndarray:
    """Multi-label STAPLE consensus label map; undecided voxels by majority vote.

    Parameters
    ----------
    raters : ndarray of int, shape (R, Z, Y, X) or (R, Y, X)
        One label map per rater, values >= 0.
    max_iterations : int

    Returns
    -------
    ndarray of int16, same spatial shape
    """
    import SimpleITK as sitk

    raters = np.asarray(raters)
    if raters.min() < 0:
        raise DatasetError("rater label maps must hold non-negative label values")
    undecided = int(raters.max()) + 1
    if np.all(raters == raters[:1]):
        return raters[0].astype(np.int16)
    staple = sitk.MultiLabelSTAPLEImageFilter()
    staple.SetLabelForUndecidedPixels(undecided)
    staple.SetMaximumNumberOfIterations(max_iterations)
    images = [sitk.GetImageFromArray(r.astype(np.uint16)) for r in raters]
    consensus = sitk.GetArrayFromImage(staple.Execute(images)).astype(np.int16)
    open_voxels = consensus == undecided
    if open_voxels.any():
        consensus[open_voxels] = majority_vote(raters[:, open_voxels])
    return consensus


def majority_vote(raters: np.ndarray) -> np.ndarray:
    """Most frequent label over axis 0 (ties: the lowest label)."""
    raters = np.asarray(raters)
    labels = np.arange(int(raters.max()) + 1)
    counts = (raters[None] == labels.reshape(-1, *([1] * raters.ndim))).sum(axis=1)
    return np.argmax(counts, axis=0).astype(np.int16)


def rater_frequency(raters: np.ndarray, num_classes: int) -> np.ndarray:
    """Fraction of raters assigning each class to each voxel.

    Returns
    -------
    ndarray of float32, shape (num_classes, Z, Y, X); sums to 1 over axis 0.
    """
    raters = np.asarray(raters)
    return np.stack([(raters == c).mean(axis=0) for c in range(num_classes)]).astype(np.float32)


def consensus_dataset(
    dataset: Dataset | str | Path,
    out: str | Path,
    *,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Write a copy of a several-raters dataset whose training label is the STAPLE consensus.

    Every case with rater files gets ``labelsTr/<case>`` = :func:`staple_consensus` of its raters
    (the rater files are copied beside it, for evaluation against every rater); cases without
    raters keep their label. The result trains with ``medseg train`` as any dataset.

    Raises
    ------
    DatasetError
        No case has rater files, or a rater file holds a value that is not a class.
    GeometryError
        A rater file does not match its case image's grid.
    """
    from medseg.data import load_dataset

    source = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    cases = tuple(c for c in source.cases if c.rater_paths or c.label_path is not None)
    if not any(c.rater_paths for c in cases):
        raise DatasetError(
            f"{source.root}: no rater files found; name them labelsTr/<case>_rater<k>"
            f"{source.file_ending}, beside the case's images in imagesTr"
        )
    allowed = source.labels.allowed_values

    def derive(index: int, case: Case) -> Image:
        if not case.rater_paths:
            return read_image(case.label_path)  # type: ignore[arg-type]
        raters, first = read_raters(case, _image_grid(case))
        unknown = sorted({int(v) for v in np.unique(raters)} - allowed)
        if unknown:
            raise DatasetError(
                f"case {case.case_id!r}: rater label values {unknown} are not classes of the "
                f"dataset (allowed: {sorted(allowed)})"
            )
        return first.with_array(staple_consensus(raters)[None])

    return derive_dataset(
        source,
        Path(out),
        derive,
        cases=cases,
        labels=source.labels,
        description={"kind": "staple-consensus", "raters": _rater_counts(cases)},
        on_progress=on_progress,
    )


def _image_grid(case: Case) -> Image | None:
    if not case.image_paths or case.image_paths[0].is_dir():
        return None
    return read_image(case.image_paths[0])


def _rater_counts(cases: Sequence[Case]) -> dict[str, int]:
    return {c.case_id: len(c.rater_paths) for c in cases if c.rater_paths}
