"""Preprocess one case (crop, normalise, resample) and map predictions back to its original grid.

Order as in nnU-Net (docs/plan.md, Preprocessing): crop to the nonzero box, normalise, resample;
export reverses it.
Arrays are 3D throughout: a 2D image ``(C, Y, X)`` becomes ``(C, 1, Y, X)`` and gets its 2D shape
back in :func:`restore_to_original`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from medseg.errors import GeometryError
from medseg.io import Image
from medseg.plan.cases import Bbox, as_3d, bbox_of, crop_slices, nonzero_mask
from medseg.plan.plan import Plan
from medseg.preprocess.normalize import normalize
from medseg.preprocess.resample import (
    new_shape_for,
    resample_image,
    resample_label,
    resampled_slabs,
)


@dataclass(frozen=True, kw_only=True)
class CaseProperties:
    """What is needed to put a prediction back on the original grid (JSON-able).

    ``spatial_shape``, ``spacing``, ``origin`` and ``direction`` are the original image's, in
    array order (2 or 3 axes). ``bbox`` (half-open voxel ranges) and ``shape_after_crop`` are 3D
    in image axis order, with a leading axis of size 1 for 2D images. ``transpose`` is the axis
    order of the network grid (``Plan.transpose``); ``shape_after_resampling``,
    ``spacing_after_resampling`` (mm) and ``separate_axis`` (the axis resampled with order 0, or
    ``None``) are in that order.
    """

    case_id: str = ""
    spatial_shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[tuple[float, ...], ...]
    bbox: tuple[tuple[int, int], ...]
    shape_after_crop: tuple[int, ...]
    transpose: tuple[int, ...] = (0, 1, 2)
    shape_after_resampling: tuple[int, ...]
    spacing_after_resampling: tuple[float, ...]
    separate_axis: int | None = None

    def crop_view(self, array: npt.NDArray) -> npt.NDArray:
        """The crop region of a channel-first array on the original grid, in network axis order.

        Parameters
        ----------
        array : ndarray, shape (K, *spatial_shape), or (K, 1, Y, X) for a 2D image

        Returns
        -------
        ndarray
            A view (writes go to ``array``) of shape ``(K, *network_crop_shape)``: what
            :func:`~medseg.preprocess.resampled_slabs` resamples to, with ``separate_axis`` and
            the streaming axis in its order.
        """
        crop = array[(slice(None), *crop_slices(self.bbox))]
        return crop.transpose(0, *[a + 1 for a in self.transpose])


def preprocess_image(
    image: Image, plan: Plan, config_name: str | None = None, *, case_id: str = ""
) -> tuple[npt.NDArray[np.float32], CaseProperties]:
    """Crop, normalise and resample an image for the network.

    Parameters
    ----------
    image : Image
        ``(C, Z, Y, X)`` or ``(C, Y, X)`` raw intensities, channels in plan order.
    plan : Plan
    config_name : str, optional
        A configuration of the plan (``"3d"``, ``"2d"``...); the plan's default when omitted.
        A planar configuration resamples the two axes other than its ``plane`` only.

    Returns
    -------
    array : ndarray of float32, shape (C, Z', Y', X')
        On the configuration's target spacing, spatial axes in ``plan.transpose`` order
        (``(C, 1, Y', X')`` for a 2D image).
    properties : CaseProperties
    """
    array, _, props = _prepare(image, None, plan, config_name, case_id=case_id)
    return array, props


def preprocess_case(
    image: Image,
    label: npt.NDArray[np.integer] | None,
    plan: Plan,
    config_name: str | None = None,
    *,
    case_id: str = "",
    label_order: Literal[0, 1] = 1,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.integer] | None, CaseProperties]:
    """:func:`preprocess_image` plus the label map, cropped and resampled the same way.

    ``label`` has the image's spatial shape; it comes back as ``(1, Z', Y', X')`` in uint8 (int16
    if a value exceeds 255). ``label_order`` 1 resamples each label's mask linearly and keeps it
    where >= 0.5 (nnU-Net); 0 is nearest neighbour.
    """
    return _prepare(image, label, plan, config_name, case_id=case_id, label_order=label_order)


def _prepare(image, label, plan, config_name, *, case_id, label_order=1):
    config = plan.configuration(config_name)
    if image.ndim == 2 and config.plane != 0:
        raise GeometryError(
            f"{case_id or image.meta.get('source', 'image')}: a 2D image has one plane, but "
            f"configuration {config.name!r} slices along axis {config.plane}; use a "
            "configuration with plane 0 (2d)"
        )
    array = as_3d(image.array, image.ndim)
    spacing = (999.0 * max(image.spacing), *image.spacing) if image.ndim == 2 else image.spacing
    order = tuple(plan.transpose) if plan.transpose and image.ndim == 3 else (0, 1, 2)
    mask = nonzero_mask(array)
    box: Bbox = bbox_of(mask) if plan.crop_to_nonzero else tuple((0, s) for s in mask.shape)
    sl = crop_slices(box)
    array, mask = array[(slice(None), *sl)], mask[sl]
    crop_shape = tuple(int(s) for s in mask.shape)
    array, mask = array.transpose(0, *[a + 1 for a in order]), mask.transpose(order)
    spacing = tuple(spacing[a] for a in order)
    array = normalize(array, plan.normalization, mask)
    target = tuple(config.spacing)
    separate = config.separate_axis
    if len(target) == 2:  # planar: in-plane only, the slice axis keeps its spacing
        separate = config.plane
        target = (*target[:separate], spacing[separate], *target[separate:])
    shape = new_shape_for(array.shape[1:], spacing, target)
    array = resample_image(array, shape, separate_axis=separate)
    props = CaseProperties(
        case_id=case_id,
        spatial_shape=image.spatial_shape,
        spacing=image.spacing,
        origin=image.origin,
        direction=tuple(tuple(float(v) for v in row) for row in image.direction),
        bbox=box,
        shape_after_crop=crop_shape,
        transpose=order,
        shape_after_resampling=shape,
        spacing_after_resampling=tuple(
            float(s * c / n) for s, c, n in zip(spacing, mask.shape, shape, strict=True)
        ),
        separate_axis=separate,
    )
    if label is None:
        return array, None, props
    return array, preprocess_label(label, props, label_order=label_order), props


def preprocess_label(
    label: npt.NDArray[np.integer], props: CaseProperties, *, label_order: Literal[0, 1] = 1
) -> npt.NDArray[np.integer]:
    """A label map on the original image grid cropped, transposed and resampled as ``props`` says.

    The same steps :func:`preprocess_case` applies to the case's label; for further label maps
    of the case (several raters). Returns ``(1, Z', Y', X')`` in uint8 (int16 past 255).
    """
    ndim = len(props.spatial_shape)
    sl = tuple(slice(start, stop) for start, stop in props.bbox)
    lab = as_3d(np.asarray(label)[None], ndim)[0][sl].transpose(props.transpose)
    dtype = np.uint8 if lab.min() >= 0 and lab.max() <= 255 else np.int16
    shape = tuple(props.shape_after_resampling)
    lab = resample_label(
        lab.astype(dtype), shape, separate_axis=props.separate_axis, order=label_order
    )
    return lab[None]


def restore_to_original(
    probabilities: npt.NDArray[np.floating] | torch.Tensor,
    props: CaseProperties,
    *,
    region_order: tuple[int, ...] | None = None,
    logits: bool = False,
    slab: int = 8,
) -> Image:
    """Label map on the original grid from network outputs on the preprocessed grid.

    Outputs are resampled slab by slab (linear; order 0 along ``props.separate_axis``) to the
    cropped shape and turned into labels at once, so full-resolution float32 is held for one
    slab only. The crop is then put back into a background-filled volume.

    Parameters
    ----------
    probabilities : ndarray or Tensor, shape (K, Z', Y', X')
        Softmax probabilities or logits, or per-region sigmoid probabilities or logits, on the
        grid of :func:`preprocess_image`'s output.
    props : CaseProperties
    region_order : tuple of int, optional
        For region (sigmoid) outputs: the label painted by each output channel, in painting
        order (``Plan.region_order``); later regions overwrite earlier ones. ``None``: softmax
        outputs, label = argmax.
    logits : bool
        Whether region outputs are logits (threshold 0) or probabilities (threshold 0.5).
    slab : int
        Output slices resampled per step.

    Returns
    -------
    Image
        uint8 labels ``(1, *props.spatial_shape)`` with the original spacing, origin and
        direction.
    """
    _check_grid(probabilities, props)
    full = np.zeros(_full_shape(props), np.uint8)
    threshold = 0.0 if logits else 0.5
    axis = 0 if props.separate_axis is None else props.separate_axis
    region = props.crop_view(full[None])[0]  # a view: written in place
    moved = np.moveaxis(region, axis, 0)
    for start, stop, values in resampled_slabs(
        probabilities,
        region.shape,
        separate_axis=props.separate_axis,
        slab=slab,
    ):
        moved[start:stop] = outputs_to_labels(values, region_order, threshold=threshold).numpy()
    if len(props.spatial_shape) == 2:
        full = full[0]
    return Image(
        array=full[None],
        spacing=props.spacing,
        origin=props.origin,
        direction=np.asarray(props.direction),
        meta={"case_id": props.case_id},
    )


def restore_probabilities(
    probabilities: npt.NDArray[np.floating] | torch.Tensor,
    props: CaseProperties,
    *,
    out: npt.NDArray[np.floating] | None = None,
    background_channel: int | None = 0,
    slab: int = 8,
) -> npt.NDArray[np.floating]:
    """Class probabilities on the original grid, written slab by slab into ``out``.

    Parameters
    ----------
    probabilities : ndarray or Tensor, shape (K, Z', Y', X')
        On the grid of :func:`preprocess_image`'s output.
    props : CaseProperties
    out : ndarray, shape (K, *props.spatial_shape), optional
        Destination, e.g. a float16 ``np.memmap`` so the full volume never sits in RAM.
        Default: a new float16 array.
    background_channel : int or None
        Channel set to 1 outside the nonzero crop (0 for softmax outputs); ``None`` leaves every
        channel 0 there (region outputs).
    slab : int
        Output slices resampled per step.

    Returns
    -------
    ndarray, shape (K, *props.spatial_shape)
        ``out``, filled.
    """
    _check_grid(probabilities, props)
    k = int(probabilities.shape[0])
    shape = (k, *props.spatial_shape)
    if out is None:
        out = np.zeros(shape, np.float16)
    elif tuple(out.shape) != shape:
        raise GeometryError(f"restore_probabilities: out has shape {out.shape}, expected {shape}")
    out[...] = 0
    full = out[:, None] if len(props.spatial_shape) == 2 else out
    if background_channel is not None:
        full[background_channel] = 1
    crop = props.crop_view(full)
    axis = 0 if props.separate_axis is None else props.separate_axis
    moved = np.moveaxis(crop, axis + 1, 0)  # (streaming axis, K, *plane)
    for start, stop, values in resampled_slabs(
        probabilities,
        crop.shape[1:],
        separate_axis=props.separate_axis,
        slab=slab,
    ):
        moved[start:stop] = values.numpy()
    return out


def outputs_to_labels(
    values: torch.Tensor, region_order: Sequence[int] | None = None, *, threshold: float = 0.0
) -> torch.Tensor:
    """uint8 labels from network outputs ``(n, K, ...)``, on the device of ``values``.

    Softmax outputs (``region_order`` ``None``): the argmax over the K channels. Region outputs:
    each channel's label of ``region_order`` painted where the channel exceeds ``threshold``
    (0 for logits, 0.5 for probabilities), later regions over earlier ones.

    Returns
    -------
    Tensor of uint8, shape (n, ...)
    """
    if region_order is None:
        return _argmax_channels(values)
    labels = torch.zeros((values.shape[0], *values.shape[2:]), dtype=torch.uint8)
    labels = labels.to(values.device)
    for channel, value in enumerate(region_order):
        labels[values[:, channel] > threshold] = value
    return labels


def _argmax_channels(values: torch.Tensor) -> torch.Tensor:
    """Argmax over axis 1 of ``(n, K, ...)`` as uint8 (first maximum wins, as ``argmax``).

    A running maximum over the K channels: a few element-wise passes, several times faster
    than ``torch.argmax`` over a short, strided axis.
    """
    best = values[:, 0].clone()
    labels = torch.zeros(best.shape, dtype=torch.uint8, device=values.device)
    for k in range(1, values.shape[1]):
        better = values[:, k] > best
        labels[better] = k
        torch.maximum(best, values[:, k], out=best)
    return labels


def _check_grid(probabilities: npt.NDArray | torch.Tensor, props: CaseProperties) -> None:
    shape = tuple(int(n) for n in probabilities.shape[1:])
    if shape != tuple(props.shape_after_resampling):
        raise GeometryError(
            f"case {props.case_id!r}: network output has spatial shape {shape} but the "
            f"preprocessed grid is {tuple(props.shape_after_resampling)}; pass (K, Z, Y, X) "
            "outputs for the whole preprocessed image"
        )


def _full_shape(props: CaseProperties) -> tuple[int, ...]:
    shape = tuple(props.spatial_shape)
    return (1, *shape) if len(shape) == 2 else shape
