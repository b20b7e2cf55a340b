"""Random synthesis for example data and augmentation: lesions, deformations, MR artefacts.

Every function is pure: arrays and parameters in, a new array out, randomness only from the
``rng`` argument. Arrays are spatial, without a channel axis: ``(Z, Y, X)`` or ``(Y, X)``;
``spacing`` is the voxel size in mm in the same axis order.

The approach follows two lines of work. Lesion synthesis -- pasting artificial lesions into
healthy scans -- is used for multiple sclerosis lesion segmentation when annotated lesions are
scarce: lesions are drawn as smooth irregular blobs in white matter and given a plausible
intensity change. Domain randomisation in the spirit of SynthSeg (Billot et al., "SynthSeg:
Segmentation of brain MRI scans of any contrast and resolution without retraining", Medical
Image Analysis 86, 2023) varies shape (smooth random deformations), bias field, contrast and
noise so that a model sees many plausible scanners. Here the randomisation is milder than in
SynthSeg: the real T1 contrast of the template is kept and only perturbed.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.interpolate import CubicSpline

from medseg._typing import BoolArray, FloatArray, SpacingMM


def smooth_random_field(
    shape: tuple[int, ...], rng: np.random.Generator, *, grid: tuple[int, ...]
) -> npt.NDArray[np.float32]:
    """Standard-normal values on a coarse ``grid``, upsampled to ``shape`` by cubic splines.

    The upsampling is separable (one small matrix per axis), so it costs a few
    multiply-adds per voxel.

    Parameters
    ----------
    shape : tuple of int
        Output shape, array order.
    rng : numpy.random.Generator
        Source of randomness.
    grid : tuple of int
        Control points per axis (at least 2); fewer points give smoother fields.

    Returns
    -------
    ndarray of float32, shape ``shape``
        A smooth field with values of order 1 (unit variance at the control points).
    """
    field = rng.standard_normal(tuple(max(2, int(g)) for g in grid)).astype(np.float32)
    for axis, n in enumerate(shape):
        weights = _spline_weights(n, field.shape[axis]).astype(np.float32)
        field = np.moveaxis(np.tensordot(weights, field, axes=(1, axis)), 0, axis)
    return field.astype(np.float32)


def _spline_weights(n: int, g: int) -> npt.NDArray[np.float64]:
    """Matrix (n, g) interpolating g control points, spread over n voxels, by a cubic spline."""
    positions = np.clip((np.arange(n) + 0.5) * g / n - 0.5, 0, g - 1)
    return CubicSpline(np.arange(g), np.eye(g), bc_type="natural")(positions)


def random_smooth_deformation(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    *,
    magnitude_mm: float,
    spacing: SpacingMM,
    control_spacing_mm: float = 40.0,
) -> npt.NDArray[np.float32]:
    """A smooth random displacement field (elastic deformation).

    Parameters
    ----------
    shape : tuple of int
        Spatial shape, array order ``(Z, Y, X)`` or ``(Y, X)``.
    rng : numpy.random.Generator
        Source of randomness.
    magnitude_mm : float
        Standard deviation of each displacement component at the control points, in mm.
    spacing : tuple of float
        Voxel size in mm, array order.
    control_spacing_mm : float
        Distance between control points in mm; structures smaller than this move together.

    Returns
    -------
    ndarray of float32, shape ``(ndim, *shape)``
        Displacement in mm along each array axis; use with :func:`apply_deformation`.
    """
    grid = tuple(
        max(2, math.ceil(n * s / control_spacing_mm) + 1)
        for n, s in zip(shape, spacing, strict=True)
    )
    return np.stack(
        [magnitude_mm * smooth_random_field(shape, rng, grid=grid) for _ in shape]
    ).astype(np.float32)


def apply_deformation(
    array: npt.NDArray[np.generic],
    displacement_mm: FloatArray,
    spacing: SpacingMM,
    *,
    order: int = 1,
) -> npt.NDArray[np.generic]:
    """Resample ``array`` at ``x + displacement(x)`` (pull-back warp, zero outside).

    Parameters
    ----------
    array : ndarray, shape (Z, Y, X) or (Y, X)
        Image or label map.
    displacement_mm : ndarray, shape (ndim, *array.shape)
        Displacement in mm along each array axis, e.g. from :func:`random_smooth_deformation`.
    spacing : tuple of float
        Voxel size in mm, array order.
    order : int
        Spline order: 1 (linear) for images and probability maps, 0 (nearest) for labels.

    Returns
    -------
    ndarray, same shape and dtype as ``array``
    """
    grid = np.indices(array.shape, dtype=np.float32)
    coords = grid + displacement_mm / np.asarray(spacing, np.float32).reshape(-1, *[1] * array.ndim)
    warped = ndimage.map_coordinates(array, coords, order=order, mode="constant", cval=0.0)
    return warped.astype(array.dtype, copy=False)


def random_rotation(ndim: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """A uniformly distributed rotation matrix, shape ``(ndim, ndim)`` (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def synthesize_lesions(
    allowed_mask: BoolArray,
    rng: np.random.Generator,
    *,
    count_range: tuple[int, int],
    radius_range_mm: tuple[float, float],
    spacing: SpacingMM,
    elongation_range: tuple[float, float] = (1.0, 2.0),
    irregularity: float = 0.4,
    max_attempts: int = 50,
) -> npt.NDArray[np.int32]:
    """Draw smooth, irregular, non-overlapping lesions inside ``allowed_mask``.

    Each lesion is a randomly oriented ellipsoid whose surface is pushed in and out by smoothed
    noise, then clipped to ``allowed_mask``. Its centre voxel always belongs to it.

    Parameters
    ----------
    allowed_mask : ndarray of bool, shape (Z, Y, X) or (Y, X)
        Where lesions may lie (e.g. white matter).
    rng : numpy.random.Generator
        Source of randomness.
    count_range : (int, int)
        Inclusive range of the number of lesions, drawn uniformly.
    radius_range_mm : (float, float)
        Range of the equivalent-sphere radius in mm before the perturbation.
    spacing : tuple of float
        Voxel size in mm, array order.
    elongation_range : (float, float)
        Ratio of the long axis to the radius; the other axes shrink to keep the volume
        (MS lesions are ovoid).
    irregularity : float
        Relative amplitude of the surface perturbation, in [0, 1).
    max_attempts : int
        Centres tried per lesion before giving up; a crowded mask can yield fewer lesions.

    Returns
    -------
    ndarray of int32, same shape as ``allowed_mask``
        0 outside lesions, ``1..n`` for the n lesions placed. Empty if the mask is empty.
    """
    if not 0 <= irregularity < 1:
        raise ValueError(f"irregularity must be in [0, 1), got {irregularity}")
    if not 0 <= count_range[0] <= count_range[1]:
        raise ValueError(
            f"count_range must be (low, high) with 0 <= low <= high, got {count_range}"
        )
    allowed = np.asarray(allowed_mask, dtype=bool)
    lesions = np.zeros(allowed.shape, dtype=np.int32)
    candidates = np.flatnonzero(allowed)
    count = int(rng.integers(count_range[0], count_range[1] + 1))
    if candidates.size == 0:
        return lesions
    spacing_arr = np.asarray(spacing, dtype=np.float64)
    placed = 0
    for _ in range(count):
        for _attempt in range(max_attempts):
            centre = np.unravel_index(candidates[rng.integers(candidates.size)], allowed.shape)
            box, blob = _blob(
                centre,
                allowed.shape,
                rng,
                spacing_arr,
                radius_range_mm,
                elongation_range,
                irregularity,
            )
            blob &= allowed[box]
            if lesions[box][blob].any():
                continue
            placed += 1
            lesions[box][blob] = placed
            break
    return lesions


def _blob(
    centre: tuple[np.intp, ...],
    shape: tuple[int, ...],
    rng: np.random.Generator,
    spacing: npt.NDArray[np.float64],
    radius_range_mm: tuple[float, float],
    elongation_range: tuple[float, float],
    irregularity: float,
) -> tuple[tuple[slice, ...], BoolArray]:
    ndim = len(shape)
    radius = rng.uniform(*radius_range_mm)
    elongation = rng.uniform(*elongation_range)
    axes = np.full(ndim, radius * elongation ** (-1.0 / (ndim - 1)))
    axes[0] = radius * elongation
    rotation = random_rotation(ndim, rng)
    half = np.ceil(axes[0] * (1 + irregularity) / spacing).astype(int) + 1
    box = tuple(
        slice(max(0, int(c) - h), min(n, int(c) + h + 1))
        for c, h, n in zip(centre, half, shape, strict=True)
    )
    offsets = np.indices(tuple(s.stop - s.start for s in box), dtype=np.float64)
    for axis, (c, s) in enumerate(zip(centre, box, strict=True)):
        offsets[axis] = (offsets[axis] + s.start - int(c)) * spacing[axis]
    local = np.tensordot(rotation.T, offsets, axes=1) / axes.reshape(-1, *[1] * ndim)
    distance = np.sqrt((local**2).sum(axis=0))
    noise = ndimage.gaussian_filter(
        rng.standard_normal(distance.shape), sigma=np.maximum(0.5, 0.5 * radius / spacing)
    )
    noise = np.clip(noise / max(float(noise.std()), 1e-6), -1.0, 1.0)
    return box, distance <= 1.0 + irregularity * noise


def apply_lesion_intensity(
    image: FloatArray,
    lesions: npt.NDArray[np.integer],
    rng: np.random.Generator,
    *,
    contrast_range: tuple[float, float],
    edge_sigma_voxels: float = 0.6,
) -> npt.NDArray[np.float32]:
    """Scale the intensity inside each lesion by its own random factor.

    Parameters
    ----------
    image : ndarray of float, shape (Z, Y, X) or (Y, X)
        Image to modify (not changed in place).
    lesions : ndarray of int, same shape
        Lesion instance labels (0 = none), e.g. from :func:`synthesize_lesions`.
    rng : numpy.random.Generator
        Source of randomness.
    contrast_range : (float, float)
        Range of the multiplicative factor; below 1 darkens (T1 hypointense lesions), above 1
        brightens (FLAIR/T2 hyperintense lesions).
    edge_sigma_voxels : float
        Gaussian blur of the factor map, giving partial-volume edges instead of a hard step.

    Returns
    -------
    ndarray of float32, same shape as ``image``
    """
    count = int(lesions.max(initial=0))
    factors = np.concatenate([[1.0], rng.uniform(*contrast_range, size=count)])
    factor_map = factors[lesions].astype(np.float32)
    if edge_sigma_voxels > 0:
        factor_map = ndimage.gaussian_filter(factor_map, edge_sigma_voxels)
    return (np.asarray(image, np.float32) * factor_map).astype(np.float32)


def bias_field(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    *,
    strength: float = 0.3,
    grid: int = 4,
) -> npt.NDArray[np.float32]:
    """A smooth multiplicative intensity inhomogeneity, ``exp(strength * smooth noise)``.

    Parameters
    ----------
    shape : tuple of int
        Spatial shape, array order.
    rng : numpy.random.Generator
        Source of randomness.
    strength : float
        Standard deviation of the log field at the control points (0.3 ~ +-30 %).
    grid : int
        Control points per axis (SynthSeg samples the field on a small grid too).

    Returns
    -------
    ndarray of float32, shape ``shape``
        Positive field around 1; multiply an image by it.
    """
    field = smooth_random_field(shape, rng, grid=(grid,) * len(shape))
    return np.exp(strength * field).astype(np.float32)


def random_gamma(
    image: FloatArray,
    rng: np.random.Generator,
    *,
    gamma_range: tuple[float, float] = (0.7, 1.5),
) -> npt.NDArray[np.float32]:
    """Change contrast with a random gamma on the min-max normalised intensities.

    The image is mapped to [0, 1], raised to ``gamma`` (log-uniform in ``gamma_range``) and
    mapped back to its original range, so only the contrast between tissues changes.
    """
    array = np.asarray(image, np.float32)
    gamma = math.exp(rng.uniform(math.log(gamma_range[0]), math.log(gamma_range[1])))
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if high <= low:
        return array.copy()
    unit = (array - low) / (high - low)
    return (unit**gamma * (high - low) + low).astype(np.float32)


def add_noise(
    image: FloatArray,
    rng: np.random.Generator,
    *,
    sigma: float,
    rician: bool = True,
) -> npt.NDArray[np.float32]:
    """Add noise of standard deviation ``sigma`` (image units).

    With ``rician=True`` the result is the magnitude ``|image + n1 + i n2|`` of complex
    Gaussian noise, as in magnitude MR images (non-negative, biased upwards in dark areas).
    """
    array = np.asarray(image, np.float32)
    real = array + sigma * rng.standard_normal(array.shape, dtype=np.float32)
    if not rician:
        return real
    imaginary = sigma * rng.standard_normal(array.shape, dtype=np.float32)
    return np.sqrt(real**2 + imaginary**2).astype(np.float32)
