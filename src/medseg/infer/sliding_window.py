"""Gaussian-weighted sliding-window inference with mirroring TTA and fold averaging.

Axis order follows medseg: a network input is ``(C, Z, Y, X)`` (or ``(C, Y, X)``) and a patch
size lists the spatial axes in the same order. Tiles are placed as in nnU-Net v2
(``compute_steps_for_sliding_window``): for each axis the number of tiles is
``ceil((size - patch) / (patch * step)) + 1`` and they are spread evenly from the first to the
last voxel. Each tile's output is turned into probabilities (softmax, or sigmoid for
region-based models), weighted by a Gaussian importance map (sigma = 1/8 of the patch, as in
nnU-Net) and added to running sums. Every member (fold x mirror combination) adds its
probabilities to the same sum, so the result is the mean *probability* over members (as nnU-Net
does; docs/predict.md), never the mean of logits.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from medseg.infer.uncertainty import member_entropy

ProgressFn = Callable[[int, int], None]


def gaussian_importance_map(
    patch_size: Sequence[int], *, sigma_scale: float = 1.0 / 8, peak: float = 10.0
) -> npt.NDArray[np.float32]:
    """Separable Gaussian weight map for one tile.

    Parameters
    ----------
    patch_size : sequence of int
        Tile size in voxels per spatial axis, array order.
    sigma_scale : float, default 1/8
        Standard deviation as a fraction of the tile size on each axis (nnU-Net: 1/8).
    peak : float, default 10
        Value at the centre (nnU-Net scales its map to 10).

    Returns
    -------
    ndarray of float32, shape ``patch_size``
        Symmetric under flipping any axis (centred at ``(size - 1) / 2``); strictly positive.
    """
    axes = []
    for size in patch_size:
        coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
        sigma = max(size * sigma_scale, 1e-6)
        axes.append(np.exp(-(coords**2) / (2.0 * sigma**2)))
    weights = axes[0]
    for axis in axes[1:]:
        weights = np.multiply.outer(weights, axis)
    weights = weights / weights.max() * peak
    smallest = weights[weights > 0].min()
    return np.maximum(weights, smallest).astype(np.float32)


def tile_starts(
    image_size: Sequence[int], patch_size: Sequence[int], step: float
) -> list[list[int]]:
    """Start index of every tile along each axis (nnU-Net's rule).

    Parameters
    ----------
    image_size, patch_size : sequence of int
        Spatial sizes in voxels; every image axis must be at least the patch size (pad first).
    step : float
        Tile spacing as a fraction of the patch, in (0, 1]; 0.5 means 50 % overlap.

    Returns
    -------
    list of list of int
        One list per axis; the last start is ``image - patch`` so the image is fully covered.
    """
    starts = []
    for size, patch in zip(image_size, patch_size, strict=True):
        if size < patch:
            raise ValueError(f"image size {size} is smaller than patch {patch}; pad first")
        target = patch * step
        n = math.ceil((size - patch) / target) + 1 if size > patch else 1
        spacing = (size - patch) / (n - 1) if n > 1 else 0.0
        starts.append([round(spacing * i) for i in range(n)])
    return starts


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of ``axes`` to flip, the identity ``()`` first (8 subsets for 3 axes)."""
    axes = tuple(sorted(set(axes)))
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


@dataclass(frozen=True, kw_only=True)
class WindowSettings:
    """How tiles are cut, batched and run.

    ``patch_size`` is in voxels (array order). ``mirror_axes`` are spatial axes (0 = Z) flipped
    for test-time augmentation; empty turns TTA off. ``batch_size`` counts network inputs per
    forward pass (tiles x mirror combinations). ``activation`` is ``"softmax"`` for label models
    and ``"sigmoid"`` for region models. ``use_bf16`` runs the network under bfloat16 autocast;
    ``channels_last`` stores 3D activations channels-last (both CPU speed options; see
    docs/predict.md for when labels stay the same).
    """

    patch_size: tuple[int, ...]
    step: float = 0.5
    mirror_axes: tuple[int, ...] = ()
    batch_size: int = 2
    activation: str = "softmax"
    use_bf16: bool = False
    channels_last: bool = False


@dataclass(frozen=True)
class WindowResult:
    """Mean probabilities over all members, plus the sums uncertainty needs.

    ``probabilities`` has shape ``(K, *spatial)`` (float32, on the CPU); ``mean_member_entropy``
    is the weighted mean over members of each member's entropy, shape ``spatial``, or ``None``
    when not requested. ``members`` is folds x mirror combinations.
    """

    probabilities: torch.Tensor
    mean_member_entropy: torch.Tensor | None
    members: int


def sliding_window_predict(
    networks: Iterable[nn.Module],
    image: torch.Tensor,
    settings: WindowSettings,
    *,
    num_classes: int,
    device: torch.device | str = "cpu",
    track_entropy: bool = False,
    num_networks: int | None = None,
    on_progress: ProgressFn | None = None,
) -> WindowResult:
    """Predict mean probabilities for a whole image with every network (one per fold).

    Parameters
    ----------
    networks : iterable of torch.nn.Module
        Networks in eval mode mapping ``(B, C, *patch)`` to ``(B, K, *patch)`` logits. Consumed
        lazily, so a generator can build one fold at a time to bound memory.
    image : torch.Tensor, shape (C, *spatial)
        Preprocessed network input (float32). Axes smaller than the patch are zero-padded
        symmetrically and the result cropped back.
    settings : WindowSettings
    num_classes : int
        ``K``, the number of network output channels.
    device : torch.device or str
        Where the networks and tiles run; sums live on the same device.
    track_entropy : bool
        Also accumulate each member's entropy (for mutual information).
    num_networks : int, optional
        How many networks ``networks`` yields, for progress totals (counted as seen otherwise).
    on_progress : callable(done, total), optional
        Called after each batch with tiles done over tiles x networks.

    Returns
    -------
    WindowResult
    """
    device = torch.device(device)
    spatial = tuple(image.shape[1:])
    patch = tuple(settings.patch_size)
    if len(patch) != len(spatial):
        raise ValueError(f"patch {patch} and image {spatial} differ in dimensionality")
    padded, crop = _pad_to_patch(image, patch)
    padded = padded.to(device)
    size = tuple(padded.shape[1:])
    starts = tile_starts(size, patch, settings.step)
    tiles = [
        tuple(slice(s, s + p) for s, p in zip(corner, patch, strict=True))
        for corner in itertools.product(*starts)
    ]
    gaussian = torch.from_numpy(gaussian_importance_map(patch)).to(device)
    combos = mirror_combinations(settings.mirror_axes)
    per_batch = max(1, settings.batch_size // len(combos))

    prob_sum = torch.zeros((num_classes, *size), dtype=torch.float32, device=device)
    entropy_sum = torch.zeros(size, dtype=torch.float32, device=device) if track_entropy else None
    weight_sum = torch.zeros(size, dtype=torch.float32, device=device)
    for tile in tiles:
        weight_sum[tile] += gaussian

    n_networks = 0
    done = 0
    with torch.inference_mode():
        for network in networks:
            n_networks += 1
            network = network.to(device)
            if settings.channels_last and len(patch) == 3:
                network = network.to(memory_format=torch.channels_last_3d)
            for first in range(0, len(tiles), per_batch):
                batch_tiles = tiles[first : first + per_batch]
                batch = torch.stack([padded[(slice(None), *t)] for t in batch_tiles])
                probs = _forward_mirrored(network, batch, combos, settings)
                for index, tile in enumerate(batch_tiles):
                    tile_probs = probs[:, index]  # (M, K, *patch)
                    prob_sum[(slice(None), *tile)] += tile_probs.sum(0) * gaussian
                    if entropy_sum is not None:
                        ent = member_entropy(tile_probs, settings.activation, dim=1).sum(0)
                        entropy_sum[tile] += ent * gaussian
                done += len(batch_tiles)
                if on_progress is not None:
                    on_progress(done, len(tiles) * max(n_networks, num_networks or 0))
    if n_networks == 0:
        raise ValueError("no networks given")
    members = n_networks * len(combos)
    norm = weight_sum * members
    inside = (slice(None), *crop)
    probabilities = (prob_sum / norm)[inside].cpu()
    entropy = None if entropy_sum is None else (entropy_sum / norm)[crop].cpu()
    return WindowResult(probabilities, entropy, members)


def _forward_mirrored(
    network: nn.Module,
    batch: torch.Tensor,
    combos: list[tuple[int, ...]],
    settings: WindowSettings,
) -> torch.Tensor:
    """Probabilities of every mirror combination, shape (M, B, K, *patch), float32.

    All flipped copies go through the network in one forward pass.
    """
    flipped = [torch.flip(batch, [a + 2 for a in c]) if c else batch for c in combos]
    inputs = torch.cat(flipped)
    if settings.channels_last and inputs.ndim == 5:
        inputs = inputs.contiguous(memory_format=torch.channels_last_3d)
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=settings.use_bf16):
        logits = network(inputs)
    logits = logits.float()
    if settings.activation == "sigmoid":
        probs = torch.sigmoid(logits)
    else:
        probs = torch.softmax(logits, dim=1)
    chunks = probs.split(batch.shape[0])
    unflipped = [
        torch.flip(p, [a + 2 for a in c]) if c else p for p, c in zip(chunks, combos, strict=True)
    ]
    return torch.stack(unflipped)


def _pad_to_patch(
    image: torch.Tensor, patch: tuple[int, ...]
) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad axes smaller than the patch symmetrically; return the slices of the original."""
    spatial = image.shape[1:]
    before = [max(p - s, 0) // 2 for s, p in zip(spatial, patch, strict=True)]
    after = [max(p - s, 0) - b for s, p, b in zip(spatial, patch, before, strict=True)]
    crop = tuple(slice(b, b + s) for b, s in zip(before, spatial, strict=True))
    if not any(before) and not any(after):
        return image, crop
    pad = [v for b, a in zip(reversed(before), reversed(after), strict=True) for v in (b, a)]
    return torch.nn.functional.pad(image, pad), crop
