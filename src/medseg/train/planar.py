"""Planar (2D and 2.5D) network inputs cut from 3D volumes, along any of the three axes.

A planar configuration (2-value patch) segments slices cut along spatial axis ``plane`` of the
network grid. :func:`to_plane` moves that axis first, so slice ``s`` is ``array[:, s]``, and
:func:`from_plane` puts a result back in the volume's axis order. With ``neighbours`` k > 0
(2.5D) the network input of slice ``s`` holds slices ``s - k .. s + k`` of every channel, stacked
channel-major (channel c, offset j at ``c * (2k + 1) + j``); slices past the volume ends repeat
the end slice. The sampler (:func:`slice_with_neighbours`, one slice) and prediction
(:func:`stack_neighbours`, every slice at once) build the same input.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt
import torch

ArrayOrTensor = TypeVar("ArrayOrTensor", npt.NDArray, torch.Tensor)


def plane_order(plane: int) -> tuple[int, ...]:
    """Spatial axis order with ``plane`` first, the others in their order (1 -> ``(1, 0, 2)``)."""
    if plane not in (0, 1, 2):
        raise ValueError(f"plane must be 0, 1 or 2, got {plane}")
    return (plane, *[a for a in range(3) if a != plane])


def to_plane(array: npt.NDArray, plane: int) -> npt.NDArray:
    """View of a ``(C, Z, Y, X)`` array with spatial axis ``plane`` first: ``(C, S, A, B)``."""
    return array.transpose(0, *[a + 1 for a in plane_order(plane)])


def from_plane(array: ArrayOrTensor, plane: int) -> ArrayOrTensor:
    """Inverse of :func:`to_plane` for a ``(K, S, A, B)`` numpy array or torch tensor (a view)."""
    axes = (0, *[int(a) + 1 for a in np.argsort(plane_order(plane))])
    if isinstance(array, torch.Tensor):
        return array.permute(*axes)
    return array.transpose(axes)


def neighbour_indices(index: int, size: int, neighbours: int) -> npt.NDArray[np.intp]:
    """Slices ``index - k .. index + k`` clipped to ``[0, size - 1]`` (the ends repeat)."""
    if neighbours < 0:
        raise ValueError(f"neighbours must be >= 0, got {neighbours}")
    return np.clip(np.arange(index - neighbours, index + neighbours + 1), 0, size - 1)


def slice_with_neighbours(array: npt.NDArray, index: int, neighbours: int) -> npt.NDArray:
    """The 2.5D input of slice ``index`` of a ``(C, S, A, B)`` array.

    Returns
    -------
    ndarray, shape (C * (2k + 1), A, B)
        A copy; channel ``c * (2k + 1) + j`` is slice ``index - k + j`` of channel ``c``.
    """
    picked = np.asarray(array[:, neighbour_indices(index, array.shape[1], neighbours)])
    return picked.reshape(-1, *picked.shape[2:])


def stack_neighbours(array: npt.NDArray, neighbours: int) -> npt.NDArray:
    """The 2.5D input of every slice of a ``(C, S, A, B)`` array at once.

    Returns
    -------
    ndarray, shape (C * (2k + 1), S, A, B)
        ``out[:, s]`` equals ``slice_with_neighbours(array, s, neighbours)``; the array itself
        (no copy) when ``neighbours`` is 0.
    """
    if neighbours == 0:
        return array
    size = array.shape[1]
    offsets = np.arange(-neighbours, neighbours + 1)
    index = np.clip(np.arange(size)[None] + offsets[:, None], 0, size - 1)  # (2k + 1, S)
    picked = np.asarray(array)[:, index]  # (C, 2k + 1, S, A, B)
    return np.ascontiguousarray(picked.reshape(-1, *picked.shape[2:]))
