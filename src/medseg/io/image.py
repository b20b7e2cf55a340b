"""The :class:`Image` object: a voxel array with its physical geometry.

Axis order
----------
``array`` is always channel-first: ``(C, Z, Y, X)`` for 3D images and ``(C, Y, X)`` for 2D
images, so a single-channel 3D label map has shape ``(1, Z, Y, X)``. ``spacing`` and
``origin`` are in millimetres and follow the *spatial* array axes, i.e. ``(z, y, x)``. This is
the reverse of ITK's ``(x, y, z)``; only :mod:`medseg.io` converts between the two.

``direction`` is a ``(D, D)`` matrix in the same reversed order: column ``j`` is the unit
vector, in physical (z, y, x) components, along which array axis ``j`` runs. The physical
position (z, y, x components, mm) of voxel index ``k`` is therefore::

    origin + direction @ (spacing * k)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import GeometryError


@dataclass(frozen=True, eq=False)
class Image:
    """A channel-first voxel array plus spacing, origin and direction.

    Parameters
    ----------
    array : ndarray, shape (C, Z, Y, X) or (C, Y, X)
        Voxel values, channel axis first.
    spacing : tuple of float
        Voxel size in mm per spatial axis, array order (z, y, x).
    origin : tuple of float
        Physical position in mm of the first voxel's centre, components in (z, y, x) order.
    direction : ndarray, shape (D, D)
        Direction cosines in array order (see module docstring).
    meta : dict
        Free-form metadata (source path, modality, DICOM tags). Not used for geometry.
    """

    array: npt.NDArray[Any]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: npt.NDArray[np.float64]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ndim = self.array.ndim - 1
        if ndim not in (2, 3):
            raise GeometryError(
                f"image array must be (C, Z, Y, X) or (C, Y, X), got shape {self.array.shape}"
            )
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "direction", np.asarray(self.direction, dtype=np.float64))
        if len(self.spacing) != ndim or len(self.origin) != ndim:
            raise GeometryError(
                f"spacing {self.spacing} and origin {self.origin} need {ndim} values "
                f"for an array of shape {self.array.shape}"
            )
        if self.direction.shape != (ndim, ndim):
            raise GeometryError(f"direction must be {ndim}x{ndim}, got {self.direction.shape}")
        if any(not np.isfinite(s) or s <= 0 for s in self.spacing):
            raise GeometryError(f"spacing must be positive and finite, got {self.spacing}")

    @classmethod
    def from_array(
        cls,
        array: npt.NDArray[Any],
        spacing: tuple[float, ...] | None = None,
        origin: tuple[float, ...] | None = None,
        direction: npt.ArrayLike | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Image:
        """Wrap a channel-first array; missing geometry defaults to unit spacing at the origin."""
        ndim = array.ndim - 1
        return cls(
            array=array,
            spacing=spacing if spacing is not None else (1.0,) * ndim,
            origin=origin if origin is not None else (0.0,) * ndim,
            direction=np.eye(ndim) if direction is None else np.asarray(direction, float),
            meta=dict(meta or {}),
        )

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return self.array.ndim - 1

    @property
    def num_channels(self) -> int:
        return int(self.array.shape[0])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape without the channel axis, array order (Z, Y, X) or (Y, X)."""
        return tuple(int(s) for s in self.array.shape[1:])

    def with_array(self, array: npt.NDArray[Any], **meta: Any) -> Image:
        """Same geometry, new voxels (e.g. a prediction for this image)."""
        if tuple(array.shape[1:]) != self.spatial_shape:
            raise GeometryError(
                f"new array spatial shape {tuple(array.shape[1:])} differs from "
                f"{self.spatial_shape}"
            )
        return replace(self, array=array, meta={**self.meta, **meta})

    def same_geometry(self, other: Image, *, atol: float = 1e-3) -> bool:
        """True if both share spatial shape, spacing, origin and direction within ``atol``."""
        return not geometry_differences(self, other, atol=atol)


def geometry_differences(a: Image, b: Image, *, atol: float = 1e-3) -> list[str]:
    """List the geometric properties in which two images differ (empty if they match).

    ``atol`` is in mm for spacing and origin and unitless for the direction cosines.
    """
    problems: list[str] = []
    if a.spatial_shape != b.spatial_shape:
        return [f"shape {a.spatial_shape} vs {b.spatial_shape}"]
    if not np.allclose(a.spacing, b.spacing, atol=atol, rtol=0):
        problems.append(f"spacing {_fmt(a.spacing)} vs {_fmt(b.spacing)} mm")
    if not np.allclose(a.origin, b.origin, atol=atol, rtol=0):
        problems.append(f"origin {_fmt(a.origin)} vs {_fmt(b.origin)} mm")
    if not np.allclose(a.direction, b.direction, atol=atol, rtol=0):
        problems.append("direction differs")
    return problems


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def place_on_grid(labels: Image, reference: Image, *, atol: float = 1e-3) -> Image:
    """Pad a label map that covers part of ``reference``'s voxel grid onto the whole grid.

    Parameters
    ----------
    labels : Image
        ``(1, Z, Y, X)`` label map, e.g. a DICOM-SEG that stores only the slices with segments.
    reference : Image
        The image whose grid is wanted (its voxels are not read).
    atol : float, optional
        Tolerance in mm for spacing and for the offset of ``labels``' first voxel from a voxel
        centre of ``reference``; unitless for the direction cosines.

    Returns
    -------
    Image
        ``labels`` unchanged when the grids already agree; otherwise a zero-filled map on
        ``reference``'s grid holding ``labels``' voxels at their physical positions.

    Raises
    ------
    GeometryError
        If the spacing or direction differ, the offset is not a whole number of voxels, or the
        label map reaches outside ``reference``.
    """
    if labels.same_geometry(reference, atol=atol):
        return labels
    if labels.ndim != 3 or reference.ndim != 3:
        raise GeometryError("place_on_grid needs two 3D images")
    spacing, ref_spacing = np.asarray(labels.spacing), np.asarray(reference.spacing)
    problems = []
    if not np.allclose(spacing, ref_spacing, atol=atol, rtol=0):
        problems.append(f"spacing {_fmt(labels.spacing)} vs {_fmt(reference.spacing)} mm")
    if not np.allclose(labels.direction, reference.direction, atol=atol, rtol=0):
        problems.append("direction differs")
    if problems:
        raise GeometryError(f"the two voxel grids differ: {'; '.join(problems)}")
    matrix = reference.direction * ref_spacing[None, :]
    offset = np.linalg.solve(matrix, np.asarray(labels.origin) - np.asarray(reference.origin))
    start = np.round(offset).astype(int)
    if np.any(np.abs((offset - start) * ref_spacing) > atol):
        raise GeometryError(
            f"the label map's first voxel lies between the image's voxels (offset "
            f"{tuple(round(float(v), 3) for v in offset)} voxels)"
        )
    stop = start + np.asarray(labels.spatial_shape)
    if np.any(start < 0) or np.any(stop > np.asarray(reference.spatial_shape)):
        raise GeometryError(
            f"the label map covers voxels {tuple(int(v) for v in start)} to "
            f"{tuple(int(v) - 1 for v in stop)}, outside the image's "
            f"{reference.spatial_shape} grid"
        )
    full = np.zeros((1, *reference.spatial_shape), labels.array.dtype)
    full[(slice(None), *(slice(a, b) for a, b in zip(start, stop, strict=True)))] = labels.array
    return Image(
        array=full,
        spacing=reference.spacing,
        origin=reference.origin,
        direction=reference.direction,
        meta=dict(labels.meta),
    )
