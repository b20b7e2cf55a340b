"""Segmentation tasks made without downloads, to train a promptable model for any scan.

A promptable model that must work on images it never saw learns "what is an object" from
many different tasks rather than from one anatomy. Two sources, in the spirit of SynthSeg
(Billot et al., Medical Image Analysis 2023: random label maps rendered with random contrast)
and of ScribblePrompt's synthetic tasks (Wong et al., ECCV 2024: superpixels of real images as
labels):

``"shapes3d"`` / ``"shapes2d"``
    Procedural label maps: a tessellation of the field of view into touching regions (argmax
    of smooth random fields), irregular blobs of many sizes that touch or overlap, objects
    nested in other objects, thin shells around a core (cortex-like), branching tubes, and
    classes made of many small scattered blobs (lesion-like). Every label gets a random
    intensity and texture; the image is then blurred (partial volume), multiplied by a bias
    field, gamma-changed and noised (Gaussian or Rician). 3D tasks have anisotropic spacing
    (slices 1-4 mm apart, 1 mm in plane): shapes are drawn in mm, so they are flatter in voxels.
``"photo2d"``
    A random crop of one of scikit-image's bundled photographs and micrographs (shipped inside
    the package: no download), with superpixels (Felzenszwalb) or intensity classes (multi-level
    Otsu, split into connected pieces) as labels, then the same intensity randomisation.

Two bundled images are held out for evaluation and never used here: ``coins`` and the
Shepp-Logan ``phantom`` (see ``benchmarks/bench_interactive.py``). The MNI brain template
behind :mod:`medseg.data.example` is not used either.

Everything is deterministic: :func:`generate_task` draws task ``index`` of stream ``seed``
from ``SeedSequence([seed, index])``, so the same pair gives the same arrays on any machine
with the same library versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import edt
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg._typing import SpacingMM
from medseg.data import synth
from medseg.errors import DatasetError

TASK_KINDS = ("shapes3d", "shapes2d", "photo2d")
PHOTO_NAMES = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "cell",
    "retina",
    "brick",
    "grass",
    "gravel",
    "text",
)
"""scikit-image images used for photo tasks: bundled with scikit-image, each public domain or
CC0 by its own documentation (``moon`` and ``page`` are left out: they state no licence)."""

MAX_LABELS = 40
MIN_VOXELS = 12


@dataclass(frozen=True)
class SegmentationTask:
    """One training image with its label map.

    ``image`` float32 of shape (Z, Y, X) or (Y, X), arbitrary units; ``labels`` uint8 of the
    same shape, 0 unlabelled, each other value one object class (possibly several pieces);
    ``spacing`` the voxel size in mm, array order; ``source`` says how it was made.
    """

    image: npt.NDArray[np.float32]
    labels: npt.NDArray[np.uint8]
    spacing: SpacingMM
    source: str


def generate_task(
    seed: int,
    index: int,
    *,
    kinds: tuple[str, ...] = TASK_KINDS,
    weights: tuple[float, ...] | None = None,
) -> SegmentationTask:
    """Task ``index`` of the stream ``seed``: same pair, same task.

    Parameters
    ----------
    seed, index : int
        Stream and position in it (non-negative).
    kinds : tuple of str
        Task kinds to draw from, see the module docstring.
    weights : tuple of float, optional
        Probability of each kind (default uniform).
    """
    unknown = set(kinds) - set(TASK_KINDS)
    if unknown or not kinds:
        raise DatasetError(f"unknown task kinds {sorted(unknown)}; choose from {TASK_KINDS}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    kind = kinds[int(rng.choice(len(kinds), p=p))]
    if kind == "photo2d":
        return photo_task(rng)
    return shapes_task(rng, ndim=3 if kind == "shapes3d" else 2)


def shapes_task(rng: np.random.Generator, *, ndim: int) -> SegmentationTask:
    """A procedural label map and its rendered image (see the module docstring)."""
    if ndim == 3:
        side = int(rng.integers(64, 129))
        shape: tuple[int, ...] = (int(rng.integers(24, 65)), side, int(rng.integers(64, 129)))
        spacing: SpacingMM = (float(rng.choice([1.0, 1.0, 1.5, 2.0, 3.0, 4.0])), 1.0, 1.0)
    else:
        shape = (int(rng.integers(96, 193)), int(rng.integers(96, 193)))
        spacing = (1.0, 1.0)
    labels = _tessellation(shape, spacing, rng)
    for _ in range(int(rng.integers(1, 8))):
        kind = rng.choice(
            ["blob", "nested", "shell", "tube", "scattered"], p=[0.35, 0.15, 0.15, 0.15, 0.2]
        )
        if labels.max() >= MAX_LABELS - 2:
            break
        _ADD[str(kind)](labels, spacing, rng)
    labels = _drop_tiny(labels)
    image = _render(labels, spacing, rng)
    return SegmentationTask(image, labels.astype(np.uint8), spacing, f"shapes{ndim}d")


def _extent_mm(shape: tuple[int, ...], spacing: SpacingMM) -> np.ndarray:
    return np.asarray(shape, float) * np.asarray(spacing, float)


def _field(
    shape: tuple[int, ...], spacing: SpacingMM, rng: np.random.Generator, scale_mm: float
) -> np.ndarray:
    """Smooth random field with control points about ``scale_mm`` apart."""
    grid = tuple(int(np.ceil(e / scale_mm)) + 1 for e in _extent_mm(shape, spacing))
    return synth.smooth_random_field(shape, rng, grid=grid)


def _tessellation(
    shape: tuple[int, ...], spacing: SpacingMM, rng: np.random.Generator
) -> npt.NDArray[np.int32]:
    """Touching regions filling the field: argmax of 1-6 smooth fields; region 0 unlabelled."""
    count = int(rng.integers(1, 7))
    if count == 1:
        return np.zeros(shape, np.int32)
    scale = float(rng.uniform(15, 60))
    fields = np.stack([_field(shape, spacing, rng, scale) for _ in range(count)])
    return np.argmax(fields, axis=0).astype(np.int32)


def _new_label(labels: np.ndarray) -> int:
    return int(labels.max()) + 1


def _add_blob(labels: np.ndarray, spacing: SpacingMM, rng: np.random.Generator) -> None:
    """An irregular ellipsoid of any size, painted over whatever it touches."""
    extent = float(_extent_mm(labels.shape, spacing)[1:].min())
    radius = float(np.exp(rng.uniform(np.log(2.0), np.log(0.3 * extent))))
    blob = synth.synthesize_lesions(
        np.ones(labels.shape, bool),
        rng,
        count_range=(1, 1),
        radius_range_mm=(radius, radius * 1.2),
        spacing=spacing,
        elongation_range=(1.0, 3.0),
        irregularity=float(rng.uniform(0.1, 0.6)),
    )
    labels[blob > 0] = _new_label(labels)


def _add_nested(labels: np.ndarray, spacing: SpacingMM, rng: np.random.Generator) -> None:
    """A blob inside an existing labelled region (a structure within a structure)."""
    present = np.unique(labels[labels > 0])
    if present.size == 0:
        _add_blob(labels, spacing, rng)
        return
    host = labels == rng.choice(present)
    inner = ndimage.binary_erosion(host, iterations=2)
    if inner.sum() < 30:
        return
    extent = float(np.sqrt(inner.sum() ** (2 / inner.ndim)))
    blob = synth.synthesize_lesions(
        inner,
        rng,
        count_range=(1, 1),
        radius_range_mm=(1.5, max(2.0, 0.35 * extent)),
        spacing=spacing,
        irregularity=float(rng.uniform(0.1, 0.5)),
    )
    labels[blob > 0] = _new_label(labels)


def _add_shell(labels: np.ndarray, spacing: SpacingMM, rng: np.random.Generator) -> None:
    """A large folded object split into a thin rim and its core, both labelled (cortex-like)."""
    shape = labels.shape
    extent = _extent_mm(shape, spacing)
    centre = rng.uniform(0.3, 0.7, len(shape)) * extent
    radii = rng.uniform(0.15, 0.4, len(shape)) * extent
    radii[0] = max(radii[0], 3 * spacing[0])
    grid = np.indices(shape, dtype=np.float32)
    distance = sum(
        ((grid[a] + 0.5) * spacing[a] - centre[a]) ** 2 / radii[a] ** 2 for a in range(len(shape))
    )
    folds = _field(shape, spacing, rng, float(rng.uniform(6, 20)))
    body = np.sqrt(distance) + float(rng.uniform(0.05, 0.3)) * folds < 1.0
    if body.sum() < 50:
        return
    thickness_mm = float(rng.uniform(1.5, 5.0))
    inside = edt.edt(np.ascontiguousarray(body), anisotropy=tuple(spacing))
    rim, core = body & (inside <= thickness_mm), inside > thickness_mm
    rim_label = _new_label(labels)
    labels[rim] = rim_label
    if core.any():
        labels[core] = rim_label + 1


def _add_tube(labels: np.ndarray, spacing: SpacingMM, rng: np.random.Generator) -> None:
    """A thin, winding, possibly branching tube (vessel-like), 0.7-4 mm in radius."""
    shape = np.asarray(labels.shape)
    sp = np.asarray(spacing, float)
    centre_line = np.zeros(labels.shape, bool)
    start = rng.uniform(0, 1, len(shape)) * shape * sp
    points = []
    for _branch in range(int(rng.integers(1, 4))):
        position = start if not points else points[int(rng.integers(len(points)))].copy()
        direction = rng.standard_normal(len(shape))
        for _ in range(int(rng.integers(30, 300))):
            direction = direction / np.linalg.norm(direction) + 0.25 * rng.standard_normal(
                len(shape)
            )
            direction /= np.linalg.norm(direction)
            position = position + direction * 0.7
            voxel = np.floor(position / sp).astype(int)
            if np.any(voxel < 0) or np.any(voxel >= shape):
                break
            points.append(position.copy())
            centre_line[tuple(voxel)] = True
    if not centre_line.any():
        return
    distance = edt.edt(np.ascontiguousarray(~centre_line), anisotropy=tuple(spacing))
    labels[distance <= rng.uniform(0.7, 4.0)] = _new_label(labels)


def _add_scattered(labels: np.ndarray, spacing: SpacingMM, rng: np.random.Generator) -> None:
    """One class made of 2-15 small blobs, inside one region or anywhere (lesion-like)."""
    present = np.unique(labels[labels > 0])
    allowed = np.ones(labels.shape, bool)
    if present.size and rng.random() < 0.6:
        allowed = labels == rng.choice(present)
    blobs = synth.synthesize_lesions(
        allowed,
        rng,
        count_range=(2, 15),
        radius_range_mm=(1.2, float(rng.uniform(2.0, 6.0))),
        spacing=spacing,
        irregularity=0.4,
    )
    if blobs.any():
        labels[blobs > 0] = _new_label(labels)


_ADD = {
    "blob": _add_blob,
    "nested": _add_nested,
    "shell": _add_shell,
    "tube": _add_tube,
    "scattered": _add_scattered,
}


def _drop_tiny(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 1..n in order, turning classes under ``MIN_VOXELS`` voxels into 0."""
    values, counts = np.unique(labels, return_counts=True)
    lookup = np.zeros(int(values.max()) + 1, np.int32)
    kept = [v for v, c in zip(values, counts, strict=True) if v > 0 and c >= MIN_VOXELS]
    lookup[kept] = np.arange(1, len(kept) + 1)
    return lookup[labels]


def _render(labels: np.ndarray, spacing: SpacingMM, rng: np.random.Generator) -> np.ndarray:
    """Random mean intensity and texture per label, then :func:`randomize_intensity`."""
    count = int(labels.max()) + 1
    means = rng.uniform(0, 1, count).astype(np.float32)
    image = means[labels]
    texture_amp = rng.uniform(0, 0.15, count).astype(np.float32) * (rng.random(count) < 0.6)
    if texture_amp.any():
        texture = _field(labels.shape, spacing, rng, float(rng.uniform(2, 10)))
        image = image + texture_amp[labels] * texture
    return randomize_intensity(image, spacing, rng)


def randomize_intensity(
    image: npt.NDArray[np.floating], spacing: SpacingMM, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Blur (partial volume), bias field, gamma, noise and sometimes inversion.

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X) or (Y, X)
        Clean intensities.
    spacing : tuple of float
        Voxel size in mm; the blur is up to 1.2 mm (at least 0 voxels) per axis.

    Returns
    -------
    ndarray of float32, same shape, values in about [0, 1.3]
    """
    image = np.asarray(image, np.float32)
    sigma_mm = rng.uniform(0, 1.2)
    if sigma_mm > 0.2:
        image = ndimage.gaussian_filter(image, sigma=[sigma_mm / s for s in spacing])
    low, high = float(image.min()), float(image.max())
    image = (image - low) / max(high - low, 1e-6)
    if rng.random() < 0.7:
        image = image * synth.bias_field(image.shape, rng, strength=float(rng.uniform(0, 0.4)))
    image = synth.random_gamma(image, rng, gamma_range=(0.6, 1.6))
    if rng.random() < 0.2:
        image = image.max() - image
    sigma = float(rng.uniform(0, 0.1))
    if sigma > 0.005:
        image = synth.add_noise(image, rng, sigma=sigma, rician=bool(rng.random() < 0.5))
    return image.astype(np.float32)


@lru_cache(maxsize=1)
def bundled_photos() -> dict[str, npt.NDArray[np.float32]]:
    """scikit-image's bundled images of :data:`PHOTO_NAMES` as grayscale float32 in [0, 1]."""
    from skimage import color, data

    photos = {}
    for name in PHOTO_NAMES:
        array = np.asarray(getattr(data, name)())
        if array.ndim == 3:
            array = color.rgb2gray(array[..., :3])
        array = array.astype(np.float32)
        photos[name] = (array - array.min()) / max(float(np.ptp(array)), 1e-6)
    return photos


def photo_task(rng: np.random.Generator) -> SegmentationTask:
    """A bundled image crop with superpixel or intensity-class labels (see module docstring)."""
    from skimage.filters import threshold_multiotsu
    from skimage.segmentation import felzenszwalb
    from skimage.transform import resize

    name = PHOTO_NAMES[int(rng.integers(len(PHOTO_NAMES)))]
    photo = bundled_photos()[name]
    side = int(rng.integers(96, 257))
    scale = float(rng.uniform(0.25, 1.0))
    crop = [min(n, max(32, int(side / scale))) for n in photo.shape]
    lo = [int(rng.integers(0, n - c + 1)) for n, c in zip(photo.shape, crop, strict=True)]
    patch = photo[lo[0] : lo[0] + crop[0], lo[1] : lo[1] + crop[1]]
    out_shape = tuple(max(32, round(c * side / max(crop))) for c in crop)
    patch = resize(patch, out_shape, order=1, anti_aliasing=True).astype(np.float32)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    if rng.random() < 0.6:
        labels = felzenszwalb(
            patch, scale=float(rng.uniform(50, 800)), sigma=0.8, min_size=int(rng.integers(20, 200))
        )
        labels = labels + 1
    else:
        try:
            classes = int(rng.integers(2, 5))
            levels = np.digitize(patch, threshold_multiotsu(patch, classes=classes))
        except ValueError:  # too few grey levels for that many classes
            levels = (patch > patch.mean()).astype(int)
        labels = np.zeros(patch.shape, np.int32)
        for value in np.unique(levels):
            pieces, _ = ndimage.label(levels == value)
            labels[pieces > 0] = pieces[pieces > 0] + labels.max()
    labels = _keep_some(labels, rng)
    image = randomize_intensity(patch, (1.0, 1.0), rng)
    return SegmentationTask(image, labels.astype(np.uint8), (1.0, 1.0), f"photo:{name}")


def _keep_some(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep up to ``MAX_LABELS`` random segments of at least ``MIN_VOXELS``, renumbered."""
    values, counts = np.unique(labels, return_counts=True)
    big = values[(values > 0) & (counts >= MIN_VOXELS)]
    chosen = rng.permutation(big)[:MAX_LABELS]
    lookup = np.zeros(int(values.max()) + 1, np.int32)
    lookup[chosen] = np.arange(1, len(chosen) + 1)
    return lookup[labels]
