"""Self-supervised pretraining by masked-image reconstruction on unlabelled volumes.

The plan's own network (same architecture, filters, strides) is trained to restore patches
in which a random ``mask_ratio`` of cubic blocks was blanked (set to 0, the mean of a
normalised image): the loss is the L1 error on the blanked voxels only, as in SimMIM (Xie et
al., CVPR 2022) and, for 3D CNN U-Nets, the restoration tasks of Models Genesis (Zhou et al.,
MedIA 2021). Every tensor but the output layers has the shape the segmentation network needs,
so ``medseg train --init ENCODER`` loads them (the output layers, with one channel per image
channel here, are skipped by the shape check).

Images are read, cropped, normalised and resampled exactly as for training
(:func:`medseg.preprocess.preprocess_image` with the plan), held in memory, and sampled as
random patches of the configuration's size (a random slice for ``2d``) with random flips. Batch
``k`` depends only on ``(seed, k)``. Arrays are channel-first ``(C, Z, Y, X)``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from medseg._config import write_json
from medseg._typing import PathLikeStr
from medseg.errors import ConfigError, DatasetError
from medseg.plan.plan import Plan
from medseg.preprocess import preprocess_image
from medseg.train import schedule
from medseg.train.finetune import encoder_parameter_names
from medseg.train.model_folder import save_weights
from medseg.train.networks import build_network, output_list
from medseg.train.sampling import crop_padded
from medseg.train.trainer import autocast_dtype, resolve_device

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, kw_only=True)
class PretrainResult:
    """Outcome of :func:`pretrain_encoder`.

    Attributes
    ----------
    path : Path
        The weights written (safetensors); ``path.with_suffix(".json")`` describes the run.
    iterations : int
    seconds : float
        Wall time of the iterations.
    losses : tuple of float
        Masked L1 loss of every iteration.
    tensors : int
        Tensors saved.
    """

    path: Path
    iterations: int
    seconds: float
    losses: tuple[float, ...]
    tensors: int


def load_volumes(
    inputs: PathLikeStr | Sequence[PathLikeStr], plan: Plan, config_name: str
) -> list[npt.NDArray[np.float32]]:
    """Read and preprocess every image in ``inputs`` as the plan says.

    Parameters
    ----------
    inputs : path or sequence of path
        Image files or folders (nnU-Net ``_0000`` channel files are grouped), as for
        ``medseg predict``; labels are not needed.
    plan : Plan
    config_name : str

    Returns
    -------
    list of ndarray of float32, each (C, Z, Y, X) on the configuration's grid

    Raises
    ------
    DatasetError
        No image found, or an image whose channel count is not the plan's.
    """
    from medseg.infer.files import read_case_image
    from medseg.infer.inputs import require_inputs

    volumes = []
    for case in require_inputs(inputs):
        image = read_case_image(case)
        if image.array.shape[0] != len(plan.channel_names):
            raise DatasetError(
                f"{case.paths[0]}: {image.array.shape[0]} channel(s), but the plan expects "
                f"{len(plan.channel_names)} ({list(plan.channel_names.values())})"
            )
        array, _ = preprocess_image(image, plan, config_name, case_id=case.case_id)
        volumes.append(np.ascontiguousarray(array, dtype=np.float32))
    return volumes


def mask_blocks(
    patch: torch.Tensor, ratio: float, block: Sequence[int], generator: torch.Generator
) -> torch.Tensor:
    """Which voxels to blank: ``ratio`` of the blocks of size ``block``, per sample.

    Parameters
    ----------
    patch : Tensor, shape (B, C, *spatial)
    ratio : float
        Fraction of blocks masked, in (0, 1).
    block : sequence of int
        Block edge per spatial axis, in voxels (the last block may be cut by the patch edge).
    generator : torch.Generator

    Returns
    -------
    Tensor of bool, shape (B, 1, *spatial)
        True where the voxel is masked; exactly ``round(ratio * blocks)`` blocks per sample.
    """
    spatial = patch.shape[2:]
    grid = [math.ceil(s / b) for s, b in zip(spatial, block, strict=True)]
    count = math.prod(grid)
    keep = max(1, min(count - 1, round(ratio * count)))
    scores = torch.rand(patch.shape[0], count, generator=generator)
    chosen = torch.zeros(patch.shape[0], count, dtype=torch.bool)
    chosen.scatter_(1, scores.argsort(dim=1)[:, :keep], True)
    mask = chosen.view(patch.shape[0], 1, *grid)
    for axis, b in enumerate(block):
        mask = mask.repeat_interleave(b, dim=axis + 2)
    return mask[(slice(None), slice(None), *(slice(0, s) for s in spatial))]


def pretrain_encoder(
    inputs: PathLikeStr | Sequence[PathLikeStr],
    out: PathLikeStr,
    *,
    plan: Plan,
    configuration: str | None = None,
    iterations: int = 1000,
    time_budget_s: float | None = None,
    mask_ratio: float = 0.6,
    learning_rate: float = 1e-3,
    encoder_only: bool = False,
    device: str | torch.device = "auto",
    seed: int = 0,
    on_progress: ProgressCallback | None = None,
) -> PretrainResult:
    """Pretrain the plan's network on unlabelled images and save its weights (safetensors).

    Parameters
    ----------
    inputs : path or sequence of path
        Unlabelled images (see :func:`load_volumes`).
    out : path
        The ``.safetensors`` file to write; a ``.json`` beside it records the run.
    plan : Plan
        The plan the segmentation model will be trained with (``medseg plan``), so that the
        weights fit its network.
    configuration : str, optional
        ``"3d"`` or ``"2d"``; the plan's default when omitted.
    iterations : int
        Optimisation steps (fewer when ``time_budget_s`` runs out first).
    time_budget_s : float, optional
        Stop after this many seconds of training.
    mask_ratio : float
        Fraction of blocks blanked, in (0, 1). Blocks have an eighth of the patch edge (at
        least 2 voxels).
    learning_rate : float
        AdamW's initial rate, decayed polynomially to 0 over the run.
    encoder_only : bool
        Save only the encoder's tensors (:func:`medseg.train.finetune.encoder_parameter_names`)
        instead of every tensor of the network.
    device : str or torch.device
    seed : int
        Seed of the weights, patches and masks.
    on_progress : callable, optional
        ``on_progress(done, iterations)`` after each iteration.

    Returns
    -------
    PretrainResult

    Raises
    ------
    ConfigError
        Bad settings; DatasetError: no usable image.
    """
    if not 0 < mask_ratio < 1:
        raise ConfigError(f"mask ratio must be in (0, 1), got {mask_ratio}")
    if iterations < 1 or (time_budget_s is not None and time_budget_s <= 0):
        raise ConfigError("iterations must be >= 1 and the time budget > 0")
    config = plan.configuration(configuration)
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"{out}: the output must be a .safetensors file")
    volumes = load_volumes(inputs, plan, config.name)
    dev = resolve_device(device)
    ndim = len(config.patch_size)
    channels = len(plan.channel_names)
    torch.manual_seed(seed)
    patch = config.patch_size
    net = build_network(config.network, channels, channels, ndim, patch_size=patch).to(dev)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=1e-5)
    dtype = autocast_dtype(config.training.mixed_precision, dev)
    block = [max(2, p // 8) for p in config.patch_size]
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    start = time.perf_counter()
    for k in range(iterations):
        elapsed = time.perf_counter() - start
        if time_budget_s is not None and elapsed >= time_budget_s:
            break
        progress = max(k / iterations, elapsed / time_budget_s if time_budget_s else 0.0)
        for group in optimizer.param_groups:
            group["lr"] = schedule.poly_lr(learning_rate, progress)
        patch = torch.from_numpy(_patches(volumes, config.patch_size, config.batch_size, seed, k))
        mask = mask_blocks(patch, mask_ratio, block, generator)
        patch, mask = patch.to(dev), mask.to(dev)
        optimizer.zero_grad(set_to_none=True)
        with nullcontext() if dtype is None else torch.autocast(dev.type, dtype=dtype):
            restored = output_list(net(patch.masked_fill(mask, 0.0)), ndim)[0]
        error = (restored.float() - patch).abs() * mask
        loss = error.sum() / (mask.sum() * channels).clamp(min=1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
        optimizer.step()
        losses.append(float(loss.item()))
        if on_progress is not None:
            on_progress(k + 1, iterations)
    seconds = time.perf_counter() - start
    state = net.state_dict()
    if encoder_only:
        keep = encoder_parameter_names(net)
        state = {name: value for name, value in state.items() if name in keep}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(state, out)
    result = PretrainResult(
        path=out, iterations=len(losses), seconds=seconds, losses=tuple(losses), tensors=len(state)
    )
    write_json(
        {
            "method": "masked-image reconstruction (L1 on blanked blocks)",
            "dataset_name": plan.dataset_name,
            "configuration": config.name,
            "architecture": config.network.architecture,
            "images": len(volumes),
            "iterations": result.iterations,
            "seconds": round(seconds, 2),
            "mask_ratio": mask_ratio,
            "block_voxels": block,
            "learning_rate": learning_rate,
            "encoder_only": encoder_only,
            "seed": seed,
            "loss_first_10": _mean(losses[:10]),
            "loss_last_10": _mean(losses[-10:]),
        },
        out.with_suffix(".json"),
    )
    logger.info(
        "pretrained %d iterations in %.0f s: masked L1 %.4f -> %.4f",
        result.iterations,
        seconds,
        _mean(losses[:10]),
        _mean(losses[-10:]),
    )
    return result


def _patches(
    volumes: list[npt.NDArray[np.float32]],
    patch_size: Sequence[int],
    batch_size: int,
    seed: int,
    k: int,
) -> npt.NDArray[np.float32]:
    """Batch ``k``: random (zero-padded) patches, randomly flipped, shape (B, C, *patch)."""
    rng = np.random.default_rng([seed, k])
    out = []
    for _ in range(batch_size):
        volume = volumes[int(rng.integers(len(volumes)))]
        if len(patch_size) == 2:
            volume = volume[:, int(rng.integers(volume.shape[1]))]
        start = [
            int(rng.integers(min(0, n - p), max(0, n - p) + 1))
            for n, p in zip(volume.shape[1:], patch_size, strict=True)
        ]
        patch = crop_padded(volume, start, patch_size)
        for axis in range(1, patch.ndim):
            if rng.random() < 0.5:
                patch = np.flip(patch, axis=axis)
        out.append(np.ascontiguousarray(patch))
    return np.stack(out).astype(np.float32, copy=False)


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else math.nan
