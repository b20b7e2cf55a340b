"""Final validation of a fold: sliding-window prediction of whole validation cases.

Runs after the last epoch on the fold's validation cases as stored in the preprocessed cache
(target spacing, cropped), with MONAI's ``sliding_window_inference`` (overlap 0.5, Gaussian
weighting with σ = 1/8 of the patch, no mirroring). Dice per class is computed per case (NaN when
the class is absent from both prediction and reference; ignore-label voxels excluded) and
averaged over cases ignoring NaN, as nnU-Net's evaluation does. Scores are in the preprocessed
space, so they can differ slightly from scores of exported predictions on the original images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn

from medseg._atomic import atomic_path
from medseg.plan.plan import Plan
from medseg.preprocess.case import outputs_to_labels
from medseg.train.losses import DeepSupervisionLoss, labels_to_regions, region_channels
from medseg.train.networks import output_list
from medseg.train.planar import from_plane, stack_neighbours, to_plane
from medseg.train.sampling import CaseSource

VALIDATION_LABELS = "validation_labels.npz"
"""A fold's predicted and reference label maps of its validation cases (preprocessed grid)."""

METHOD = "sliding window on the preprocessed validation cases (overlap 0.5, Gaussian, no TTA)"


@torch.no_grad()
def validate_cases(
    net: nn.Module,
    source: CaseSource,
    case_ids: Sequence[str],
    plan: Plan,
    config_name: str,
    *,
    device: torch.device,
    dtype: torch.dtype | None = None,
    annotated: Mapping[str, Sequence[int]] | None = None,
    predictions: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """Dice per class for each case in ``case_ids``.

    ``annotated`` gives the foreground classes of partially labelled cases: a case is scored
    only on those (NaN for the others, which its label map calls background). A
    ``predictions`` dict receives each case's predicted label map, uint8 ``(Z, Y, X)`` on the
    preprocessed grid (argmax, or regions painted in ``plan.region_order``).

    Returns
    -------
    dict
        ``{case_id: {class_name: dice}}``; class names as in
        :func:`class_names` (foreground labels or regions).
    """
    config = plan.configuration(config_name)
    patch = tuple(config.patch_size)
    ndim = len(patch)
    net.eval()

    def predict(x: torch.Tensor) -> torch.Tensor:
        context = nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
        if ndim == 2:  # windows of shape (1, A, B) cut from the slice stack
            x = x[:, :, 0]
        with context:
            logits = output_list(net(x), ndim)[0].float()
        return logits[:, :, None] if ndim == 2 else logits

    regions = [labels for _, labels in region_channels(plan.regions)]
    names = class_names(plan)
    results = {}
    for case_id in case_ids:
        image, label, _ = source.load(case_id, mmap=True)
        if ndim == 2:  # slices along the plane first, 2.5D neighbours as channels
            image = stack_neighbours(to_plane(image, config.plane), config.neighbours)
        x = torch.from_numpy(np.array(image, dtype=np.float32))[None]  # (1, C, Z, Y, X)
        # 2D: windows one slice thick, so each is a 2D patch of one slice along the plane
        logits = sliding_window_inference(
            x.to(device),
            roi_size=patch if ndim == 3 else (1, *patch),
            sw_batch_size=4 * config.batch_size,  # no gradients: 4 training batches fit
            predictor=predict,
            overlap=0.5 if ndim == 3 else (0.0, 0.5, 0.5),
            mode="gaussian",
            sigma_scale=0.125,
        )
        if ndim == 2:
            logits = from_plane(logits[0], config.plane)[None]
        ref = torch.from_numpy(np.asarray(label, dtype=np.int64))[None].to(device)
        valid = torch.ones_like(ref[:, 0], dtype=torch.bool)
        if plan.ignore_label is not None:
            valid = ref[:, 0] != plan.ignore_label
        labels = outputs_to_labels(logits, tuple(plan.region_order) if regions else None)
        if regions:
            pred, truth = logits > 0, labels_to_regions(ref, regions).bool()
        else:
            classes = torch.arange(logits.shape[1], device=device)
            classes = classes.view(1, -1, *[1] * (ref.ndim - 2))
            pred, truth = labels[:, None] == classes, ref == classes
        if predictions is not None:
            predictions[case_id] = labels[0].cpu().numpy()
        scores = {}
        scored = (annotated or {}).get(case_id, [channel for channel, _ in names])
        for channel, name in names:
            if channel not in scored:
                scores[name] = float("nan")
                continue
            p, r = pred[:, channel] & valid, truth[:, channel] & valid
            denominator = float(p.sum() + r.sum())
            scores[name] = 2 * float((p & r).sum()) / denominator if denominator else float("nan")
        results[case_id] = scores
    return results


def save_validation_labels(
    path: Path, predictions: Mapping[str, np.ndarray], source: CaseSource
) -> Path:
    """Write ``path / VALIDATION_LABELS``: each validation case's labels, for post-processing.

    Keys per case: ``pred:<case>`` and ``ref:<case>`` (uint8 label maps, preprocessed grid)
    and ``voxel_ratio:<case>``, the volume of a preprocessed voxel over an original one, so a
    component size chosen here can be stated in original voxels
    (:func:`medseg.infer.postprocessing_from_training`).
    """
    arrays: dict[str, np.ndarray] = {}
    for case_id, pred in predictions.items():
        _, label, props = source.load(case_id, mmap=True)
        arrays[f"pred:{case_id}"] = pred
        arrays[f"ref:{case_id}"] = np.asarray(label[0], dtype=np.uint8)
        arrays[f"voxel_ratio:{case_id}"] = np.array(_voxel_ratio(props))
    target = path / VALIDATION_LABELS
    with atomic_path(target) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, **arrays)
    return target


def _voxel_ratio(props: object) -> float:
    """Preprocessed over original voxel volume; 1 for a source that does not resample."""
    after = getattr(props, "spacing_after_resampling", None)
    original = getattr(props, "spacing", None)
    if after is None or original is None:
        return 1.0
    return math.prod(after[-len(original) :]) / math.prod(original)  # 2D: no slice axis


def mean_over_cases(per_case: dict[str, dict[str, float]]) -> dict[str, float]:
    """NaN-ignoring mean Dice per class over cases (NaN if a class is never scored)."""
    names = next(iter(per_case.values())).keys() if per_case else []
    out = {}
    for name in names:
        values = [s[name] for s in per_case.values() if not np.isnan(s[name])]
        out[name] = float(np.mean(values)) if values else float("nan")
    return out


def class_names(plan: Plan) -> list[tuple[int, str]]:
    """(output channel, name) of every scored output: foreground labels or regions."""
    if plan.regions:
        return [(i, name) for i, (name, _) in enumerate(region_channels(plan.regions))]
    by_value = {v: n for n, v in plan.labels.items()}
    return [(c, by_value.get(c, f"label_{c}")) for c in range(1, plan.num_classes)]


@torch.no_grad()
def patch_validation(
    net: nn.Module,
    loss_fn: DeepSupervisionLoss,
    batches: Sequence[tuple[torch.Tensor, ...]],
    plan: Plan,
    device: torch.device,
    dtype: torch.dtype | None,
    memory_format: torch.memory_format | None,
) -> tuple[float, dict[str, float]]:
    """Mean loss and pseudo-Dice per class over fixed validation batches of patches.

    Dice is computed from true/false positives summed over all batches (nnU-Net's
    pseudo-Dice); the ignore label is excluded. A batch may carry an annotated-class mask
    ``(image, label, annotated)``: a class is then scored only in the samples annotating it.
    Leaves ``net`` in eval mode.
    """
    net.eval()
    names = class_names(plan)
    tp, fp, fn = (np.zeros(len(names)) for _ in range(3))
    losses = []
    regions = [labels for _, labels in region_channels(plan.regions)]
    for image, label, *extra in batches:
        label = label.to(device).long()
        with _autocast(device.type, dtype):
            logits = output_list(net(_to_device(image, device, memory_format)), image.ndim - 2)[0]
        logits = logits.float()
        losses.append(float(loss_fn.loss(logits, label, *extra)))
        valid = torch.ones_like(label, dtype=torch.bool)
        if plan.ignore_label is not None:
            valid = label != plan.ignore_label
        if regions:
            pred, ref = logits > 0, labels_to_regions(label, regions).bool()
        else:
            classes = torch.arange(logits.shape[1], device=device).view(
                1, -1, *[1] * (label.ndim - 2)
            )
            pred, ref = logits.argmax(1, keepdim=True) == classes, label == classes
        for i, (channel, _) in enumerate(names):
            keep = valid[:, 0]
            if extra:  # the annotated-class mask, (B, C)
                keep = keep & extra[0][:, channel].to(device).view(-1, *[1] * (keep.ndim - 1))
            p, r = pred[:, channel] & keep, ref[:, channel] & keep
            tp[i] += float((p & r).sum())
            fp[i] += float((p & ~r).sum())
            fn[i] += float((~p & r).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2 * tp / (2 * tp + fp + fn)
    return float(np.mean(losses)) if losses else math.nan, {
        name: float(d) for (_, name), d in zip(names, dice, strict=True)
    }


def _autocast(device_type: str, dtype: torch.dtype | None):
    return nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


def _to_device(x: torch.Tensor, device: torch.device, memory_format: torch.memory_format | None):
    x = x.to(device, non_blocking=True)
    return x if memory_format is None else x.contiguous(memory_format=memory_format)
