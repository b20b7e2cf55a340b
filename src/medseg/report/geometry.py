"""Voxel indices to patient coordinates, and the slice orientation a radiologist calls axial.

medseg keeps ITK's physical space, which is DICOM's LPS: +x towards the patient's left, +y
posterior, +z superior (head). An :class:`~medseg.io.Image` stores the components in reversed,
array order (z, y, x): voxel index ``k = (i, j, l)`` lies at ``origin + direction @ (spacing * k)``.
Every report coordinate is given in LPS as ``(x, y, z)`` mm, the order DICOM uses.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from medseg.io import Image

FloatPoints = npt.NDArray[np.float64]


def index_to_physical(image: Image, indices: npt.ArrayLike) -> FloatPoints:
    """Physical position of voxel centres, components in array order (z, y, x), mm.

    Parameters
    ----------
    image : Image
        3D image whose geometry is used (the voxels are not read).
    indices : array_like, shape (N, 3)
        Voxel indices (may be fractional) in array order (i, j, l) = (z, y, x).

    Returns
    -------
    ndarray, shape (N, 3)
    """
    idx = np.asarray(indices, dtype=np.float64).reshape(-1, 3)
    matrix = image.direction * np.asarray(image.spacing)[None, :]
    return idx @ matrix.T + np.asarray(image.origin)[None, :]


def physical_to_index(image: Image, points_zyx: npt.ArrayLike) -> FloatPoints:
    """Inverse of :func:`index_to_physical`: fractional voxel indices of physical points."""
    points = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)
    matrix = image.direction * np.asarray(image.spacing)[None, :]
    return np.linalg.solve(matrix, (points - np.asarray(image.origin)[None, :]).T).T


def to_lps(points_zyx: npt.ArrayLike) -> FloatPoints:
    """Reorder physical (z, y, x) components to LPS (x, y, z), the order reports use."""
    return np.asarray(points_zyx, dtype=np.float64)[..., ::-1]


def axial_axis(image: Image) -> int:
    """Array axis along which slices are axial: the one that runs most nearly head-to-foot.

    Column ``j`` of the direction matrix is the physical direction of array axis ``j`` in
    (z, y, x) components, so the axial axis is the column with the largest |z| component. For a
    usual axial CT or MR this is array axis 0; for a sagittal acquisition it is another axis.
    """
    return int(np.argmax(np.abs(image.direction[0, :])))


def midline_x_mm(image: Image) -> float:
    """LPS x (mm) of the centre of the field of view: the patient's midline for side assignment.

    The centre of the imaged volume is a physical point, so it is the same however the array is
    stored (flipped, permuted): sides never depend on array indices.
    """
    centre = (np.asarray(image.spatial_shape, dtype=np.float64) - 1.0) / 2.0
    return float(index_to_physical(image, centre[None, :])[0, 2])


def in_plane_basis(image: Image, axis: int) -> FloatPoints:
    """Orthonormal basis (2, 3) of the slice plane normal to array ``axis``, (z, y, x) components.

    Spanned by the physical directions of the two other array axes (Gram-Schmidt, so a
    non-orthogonal direction matrix still gives a true in-plane metric).
    """
    others = [a for a in range(3) if a != axis]
    first = image.direction[:, others[0]] / np.linalg.norm(image.direction[:, others[0]])
    second = image.direction[:, others[1]] - first * (first @ image.direction[:, others[1]])
    second /= np.linalg.norm(second)
    return np.stack([first, second])
