"""Dense pseudo-labels grown from sparse ones by a multi-label random walker (Grady 2006).

Scribbles and clicks mark a few voxels of every class and leave the rest ``ignore``. The random
walker gives every unmarked voxel the probability that a walk from it first reaches each
class's marks, with steps across strong intensity edges unlikely, so the marks spread through
the regions they sit in and stop at their borders. A voxel whose most probable class reaches
``confidence`` takes that class; the others stay ``ignore``, so training (which takes no
gradient from ignored voxels) learns from the marks and from what they surely imply. This is
the classical way to densify scribbles before training (Grady 2006; the random walker is also
medseg's interactive engine, :mod:`medseg.interactive.classical`); docs/weak.md measures it
against training on the marks alone.

Label maps are spatial, ``(Z, Y, X)`` or ``(Y, X)``; images channel first, ``(C, *spatial)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.segmentation import random_walker

from medseg.data.dataset import Case, Dataset
from medseg.errors import DatasetError
from medseg.interactive.intensity import normalize_intensity
from medseg.io import Image, read_channels
from medseg.weak._derive import ProgressCallback, derive_dataset, load_labelled, read_label
from medseg.weak.sparse import check_sparse_values, sparse_ignore

BETA = 130.0
"""Edge sharpness of the walk, as the interactive engine's (intensities z-scored first)."""


def grow_label(
    image: np.ndarray,
    sparse: np.ndarray,
    ignore: int,
    *,
    spacing: Sequence[float],
    confidence: float = 0.8,
    reach_mm: float | None = None,
    beta: float = BETA,
) -> np.ndarray:
    """Grow the marked classes of ``sparse`` into the ``ignore`` voxels of one image.

    Parameters
    ----------
    image : ndarray of float, shape (C, *spatial)
        Raw intensities, channel first.
    sparse : ndarray of int, shape spatial
        Class values where marked, ``ignore`` elsewhere.
    ignore : int
        The ignore value.
    spacing : sequence of float
        Voxel size in mm, array order (the walk is anisotropic accordingly).
    confidence : float
        Smallest probability of the most probable class for a grown voxel, in (0, 1].
    reach_mm : float, optional
        A voxel takes a class only within this distance (mm) of that class's marks. Short
        marks of a small class (one stroke per lesion) otherwise win far-away voxels whose own
        class is marked only farther off.
    beta : float
        Edge sharpness of :func:`skimage.segmentation.random_walker`.

    Returns
    -------
    ndarray of int16, shape spatial
        The marks unchanged, grown voxels with their class, the rest ``ignore`` (all of it when
        fewer than two classes are marked or the image is constant).
    """
    if not 0 < confidence <= 1:
        raise ValueError(f"confidence must be in (0, 1], got {confidence}")
    if image.shape[1:] != sparse.shape:
        raise DatasetError(f"image grid {image.shape[1:]} differs from the label's {sparse.shape}")
    out = sparse.astype(np.int16)
    marked = sparse != ignore
    classes = np.unique(sparse[marked])
    normalized = normalize_intensity(image.astype(np.float32))
    if len(classes) < 2 or marked.all() or not np.ptp(normalized) > 0:
        return out  # one class marked, nothing left to grow, or a blank image without edges
    seeds = np.zeros(sparse.shape, np.int32)
    for index, value in enumerate(classes):
        seeds[sparse == value] = index + 1
    sp = np.asarray(spacing, dtype=float)
    with warnings.catch_warnings():  # probabilities a hair outside [0, 1] are harmless here
        warnings.filterwarnings("ignore", message="The probability range")
        prob = random_walker(
            normalized,
            seeds,
            beta=beta,
            mode="cg_j",
            tol=1e-3,
            channel_axis=0,
            return_full_prob=True,
            spacing=sp / sp.min(),
        )
    best = prob.argmax(axis=0)
    sure = ~marked & (prob.max(axis=0) >= confidence)
    if reach_mm is not None:
        for index, value in enumerate(classes):
            far = ndimage.distance_transform_edt(sparse != value, sampling=sp) > reach_mm
            sure &= ~(far & (best == index))
    out[sure] = classes[best[sure]]
    return out


def grown_dataset(
    dataset: Dataset | str | Path,
    out: str | Path,
    *,
    confidence: float = 0.8,
    reach_mm: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Write a copy of a sparsely labelled dataset with every label map grown (:func:`grow_label`).

    Raises
    ------
    DatasetError
        The dataset has no ``ignore`` label (its labels are not sparse), or a label file holds
        a value that is neither a class nor the ignore value.
    """
    source = load_labelled(dataset)
    ignore = sparse_ignore(source)

    def derive(index: int, case: Case) -> Image:
        label = read_label(case)
        check_sparse_values(label.array, source.labels, case.label_path or case.case_id)
        image = read_channels(case.image_paths)
        grown = grow_label(
            image.array.astype(np.float32),
            np.asarray(label.array[0]),
            ignore,
            spacing=image.spacing,
            confidence=confidence,
            reach_mm=reach_mm,
        )
        return label.with_array(grown[None])

    return derive_dataset(
        source,
        Path(out),
        derive,
        labels=source.labels,
        description={
            "kind": "grown by the random walker",
            "confidence": confidence,
            "reach_mm": reach_mm,
        },
        on_progress=on_progress,
    )
