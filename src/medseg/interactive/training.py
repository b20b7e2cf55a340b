"""Train the promptable network on any labelled medseg dataset by simulating users.

Each training sample is a 2D crop of one class on one slice (any axis for 3D data), resized
to the network size. Nearly half of the 3D samples reproduce inference under a CVPR-style 3D
box exactly: a slice anywhere under the box, cropped by the session's region-of-interest rule,
with the box's (loose) cross-section as the only prompt. Otherwise the crop is close, follows
the session's rule or is the whole plane (objects at the scales inference shows them), and a
simulated user gives a first prompt: a box (mostly tight, so that it can tell a structure from
its neighbour), clicks drawn uniformly / at the distance maximum / near the border, a line,
centre-line or contour stroke, or, to learn propagation, a neighbouring slice's mask, blurred
and grown or shrunk as the network's own answers are. Then up to ``max_rounds`` correction
rounds add a click or stroke on the largest error and feed the network's own previous mask
back. Loss: Dice + binary cross-entropy (MONAI, as nnU-Net) after the last round: unlike
focal loss, cross-entropy keeps pushing down confident false positives on slices without the
object, where Dice gives almost no gradient. Adam with cosine decay over the iteration or
time budget, whichever ends first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from scipy import ndimage

from medseg._config import to_jsonable
from medseg.data.dataset import Dataset
from medseg.errors import ConfigError, DatasetError
from medseg.interactive.intensity import normalize_intensity
from medseg.interactive.network import InteractiveModelConfig, build_network, encode, save_model
from medseg.interactive.prompts import Box, render_prompts
from medseg.interactive.session import region_of_interest
from medseg.interactive.simulate import (
    error_click,
    error_scribble,
    simulate_box,
    simulate_scribble,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class InteractiveTrainConfig:
    """Settings of :func:`train_interactive`; every field is a CLI option.

    ``max_minutes`` stops training early (wall clock); ``classes`` empty means every
    foreground label; ``axes`` are the slice axes sampled from 3D images.
    """

    iterations: int = 20000
    batch_size: int = 8
    learning_rate: float = 3e-3
    max_rounds: int = 5
    max_minutes: float = 10.0
    classes: tuple[int, ...] = ()
    axes: tuple[int, ...] = (0, 1, 2)
    seed: int = 0
    model: InteractiveModelConfig = field(default_factory=InteractiveModelConfig)

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_size < 1 or self.max_rounds < 0:
            raise ConfigError(
                f"need iterations >= 1, batch_size >= 1, max_rounds >= 0; got {self.iterations}, "
                f"{self.batch_size}, {self.max_rounds}"
            )


@dataclass(frozen=True)
class TrainInteractiveResult:
    """Where the model went, the loss per iteration and the wall time in seconds."""

    model_dir: Path
    losses: list[float]
    seconds: float


class _Slices:
    """All labelled volumes in memory with, per (case, class, axis), the slices holding it."""

    def __init__(self, dataset: Dataset, classes: tuple[int, ...], axes: tuple[int, ...]) -> None:
        from medseg.io import read_channels, read_image

        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        for case in dataset.labelled:
            self.images.append(read_channels(case.image_paths).array.astype(np.float32))
            self.labels.append(np.asarray(read_image(case.label_path).array[0]))
        values = classes or tuple(sorted(dataset.labels.foreground.values()))
        self.ndim = self.labels[0].ndim if self.labels else 0
        self.axes = axes if self.ndim == 3 else (0,)
        self.index: list[tuple[int, int, int, np.ndarray]] = []
        for i, label in enumerate(self.labels):
            for value in values:
                present = label == value
                for axis in self.axes:
                    if self.ndim == 2:
                        slices = np.array([0]) if present.any() else np.array([], int)
                    else:
                        other = tuple(a for a in range(3) if a != axis)
                        slices = np.flatnonzero(present.any(axis=other))
                    if slices.size:
                        self.index.append((i, value, axis, slices))
        if not self.index:
            raise DatasetError(
                f"{dataset.root}: no labelled voxels of classes {values} to train on"
            )

    def pick(self, rng: np.random.Generator) -> tuple[int, int, int, np.ndarray]:
        """A random (case, class, axis, slices) entry, uniform over the index."""
        return self.index[rng.integers(len(self.index))]

    def plane(self, i: int, axis: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.ndim == 2:
            return self.images[i], self.labels[i]
        return np.take(self.images[i], k, axis=axis + 1), np.take(self.labels[i], k, axis=axis)


Sample = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


def _resize(
    image: np.ndarray, masks: list[np.ndarray], crop: tuple[slice, ...], size: int
) -> list[np.ndarray]:
    """Crop, z-score and resize an image plane (bilinear) and masks (nearest) to size²."""
    img = torch.from_numpy(normalize_intensity(image[(slice(None), *crop)]))[None]
    stack = torch.from_numpy(np.stack([m[crop] for m in masks]).astype(np.float32))[None]
    img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)[0]
    stack = F.interpolate(stack, size=(size, size), mode="nearest")[0] > 0.5
    return [img.numpy(), *stack.numpy()]


def _volume_box_sample(
    data: _Slices, entry: tuple[int, int, int, np.ndarray], rng: np.random.Generator, size: int
) -> Sample:
    """A slice under a CVPR-style 3D box, cropped by the session's region-of-interest rule.

    The box is drawn on the object's median slice and spans its extent, so on other slices
    it is loose; at inference the learned engine sees exactly this on every boxed slice.
    """
    i, value, axis, _ = entry
    box = simulate_box(data.labels[i] == value, rng, axis=axis)
    k = int(rng.integers(box.lo[axis], box.hi[axis] + 1))
    image, label = data.plane(i, axis, k)
    gt = label == value
    plane = Box(tuple(np.delete(box.lo, axis)), tuple(np.delete(box.hi, axis)))
    crop = region_of_interest([plane], None, gt.shape)
    box_map = render_prompts([plane], gt.shape).box
    img, gt_s, box_s = _resize(image, [gt, box_map], crop, size)
    return img, gt_s, gt_s, box_s


def _crop(
    region: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator
) -> tuple[slice, ...]:
    """A crop around ``region`` at a random scale, as sessions crop it at inference.

    Half the crops are close (10-70 % of the extent plus 4-16 px per side), a third follow
    the session's region-of-interest rule, the rest are the whole plane (a small object in a
    large region, as when the prompts spread over the image).
    """
    coords = np.argwhere(region)
    lo, hi = coords.min(0), coords.max(0) + 1
    draw = rng.random()
    if draw < 0.5:
        extent = hi - lo
        lo = lo - (rng.uniform(0.1, 0.7, 2) * extent + rng.integers(4, 17, 2)).astype(int)
        hi = hi + (rng.uniform(0.1, 0.7, 2) * extent + rng.integers(4, 17, 2)).astype(int)
        lo, hi = np.clip(lo, 0, shape), np.clip(hi, 0, shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    if draw < 0.83:
        return region_of_interest([Box(tuple(lo), tuple(hi - 1))], None, shape)
    return tuple(slice(0, s) for s in shape)


def _sample(data: _Slices, rng: np.random.Generator, size: int) -> Sample:
    """One crop: normalised image (C, S, S), its mask (S, S), a neighbour slice's mask, and
    the cross-section of a 3D box when the crop comes from :func:`_volume_box_sample`."""
    entry = data.pick(rng)
    i, value, axis, slices = entry
    if data.ndim == 3 and rng.random() < 0.45:
        return _volume_box_sample(data, entry, rng, size)
    depth = data.labels[i].shape[axis] if data.ndim == 3 else 1
    k = int(rng.choice(slices))
    step = int(rng.choice([-3, -2, -1, 1, 2, 3]))
    if data.ndim == 3 and rng.random() < 0.1:  # just past the object's end: learn to stop
        k, step = (int(slices[0]) - 1, 1) if rng.random() < 0.5 else (int(slices[-1]) + 1, -1)
    k, nb = int(np.clip(k, 0, depth - 1)), int(np.clip(k + step, 0, depth - 1))
    image, label = data.plane(i, axis, k)
    gt = label == value
    neighbour = data.plane(i, axis, nb)[1] == value
    crop = _crop(gt | neighbour, gt.shape, rng)
    img, gt_s, neighbour_s = _resize(image, [gt, neighbour], crop, size)
    return img, gt_s, neighbour_s, None


def _jittered_box(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The tight box around ``mask``, each side pushed out by a random jitter (pixels).

    Three boxes in four are drawn carefully (0-3 px, about the CVPR rule's 0-5 px at 256
    scaled to the crop), so that a tight box can tell a structure from its neighbour; the
    rest are sloppy (0-19 px, ScribblePrompt's rule).
    """
    box = np.zeros(mask.shape, dtype=bool)
    coords = np.argwhere(mask)
    top = 4 if rng.random() < 0.75 else 20
    lo = np.clip(coords.min(0) - rng.integers(0, top, 2), 0, None)
    hi = coords.max(0) + rng.integers(0, top, 2) + 1
    box[lo[0] : hi[0], lo[1] : hi[1]] = True
    return box


def _imperfect(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A neighbour slice's mask as propagation delivers it: usually blurred, grown or shrunk.

    At inference the previous-mask channel holds the network's own (imperfect) answer on the
    slice before; trained only on perfect neighbours, the network learns to copy that channel
    and errors drift through the volume. Smoothing with a random sigma (1-4 px) and cutting at
    a random level (0.3-0.7) loses detail and moves the border either way.
    """
    if rng.random() < 0.3 or not mask.any():
        return mask
    smooth = ndimage.gaussian_filter(mask.astype(np.float32), sigma=rng.uniform(1.0, 4.0))
    return smooth > rng.uniform(0.3, 0.7)


def _clicks(region: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` clicks in ``region``: uniform, distance maximum or near the border."""
    out = np.zeros(region.shape, dtype=bool)
    if not region.any():
        return out
    dist = ndimage.distance_transform_edt(region)
    for _ in range(count):
        rule = rng.integers(3)
        if rule == 1:
            candidates = np.argwhere(dist == dist.max())
        elif rule == 2:
            candidates = np.argwhere(region & (dist <= 3))
        else:
            candidates = np.argwhere(region)
        out[tuple(candidates[rng.integers(len(candidates))])] = True
    return out


def _first_prompt(
    gt: np.ndarray, neighbour: np.ndarray, volume_box: np.ndarray | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Box, positive, negative and previous-mask maps of a simulated first interaction."""
    shape = gt.shape
    if volume_box is not None:  # as the engine predicts a 3D box: each slice on its own
        empty = np.zeros(shape, bool)
        return volume_box, empty, empty.copy(), np.zeros(shape, np.float32)
    box = np.zeros(shape, bool)
    pos = np.zeros(shape, bool)
    neg = np.zeros(shape, bool)
    prev = np.zeros(shape, np.float32)
    mode = (
        "propagate"
        if not gt.any()
        else rng.choice(
            ["box", "box+clicks", "clicks", "scribble", "propagate"],
            p=[0.25, 0.1, 0.25, 0.15, 0.25],
        )
    )
    if mode == "propagate":
        prev = _imperfect(neighbour, rng).astype(np.float32) * 2 - 1
        if neighbour.any() and rng.random() < 0.5:
            box = _jittered_box(neighbour, rng)
    if mode in ("box", "box+clicks"):
        box = _jittered_box(gt, rng)
    if mode in ("clicks", "box+clicks"):
        pos = _clicks(gt, int(rng.integers(1, 4)), rng)
        neg = _clicks(~gt, int(rng.integers(0, 4)), rng)
    if mode == "scribble":
        kind = str(rng.choice(["line", "skeleton", "contour"]))
        pos = render_prompts([simulate_scribble(gt, rng, kind=kind)], shape).positive
        ring = ndimage.binary_dilation(gt, iterations=6) & ~ndimage.binary_dilation(
            gt, iterations=2
        )
        if ring.any() and rng.random() < 0.5:
            stroke = simulate_scribble(ring, rng, kind="skeleton", positive=False)
            neg = render_prompts([stroke], shape).negative
    return box, pos, neg, prev


def train_interactive(
    dataset: Dataset,
    out: Path,
    *,
    config: InteractiveTrainConfig | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> TrainInteractiveResult:
    """Train a promptable network on ``dataset`` and write the model folder ``out``.

    Parameters
    ----------
    dataset : Dataset
        Any labelled medseg dataset, 2D or 3D; every image must have the same channel count.
    out : Path
        Model folder to write (``interactive.json`` + ``model.safetensors``).
    config : InteractiveTrainConfig, optional
        Iterations, batch, learning rate, rounds, time budget, classes, seed, architecture.
    on_progress : callable, optional
        ``on_progress(done, total)`` after every iteration; ``total`` is the iterations
        expected to fit the time budget at the pace so far (at most ``config.iterations``).

    Returns
    -------
    TrainInteractiveResult
    """
    config = config or InteractiveTrainConfig()
    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    data = _Slices(dataset, config.classes, config.axes)
    model_config = replace(config.model, image_channels=int(data.images[0].shape[0]))
    net = build_network(model_config)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    losses: list[float] = []
    for iteration in range(config.iterations):
        progress = _progress(iteration, time.perf_counter() - start, config)
        loss = train_step(
            net,
            optimizer,
            data,
            rng,
            batch_size=config.batch_size,
            max_rounds=config.max_rounds,
            model_config=model_config,
            learning_rate=_cosine(config.learning_rate, progress),
        )
        progress = _progress(iteration + 1, time.perf_counter() - start, config)
        losses.append(loss)
        if on_progress is not None:
            on_progress(iteration + 1, max(iteration + 1, round((iteration + 1) / progress)))
        if progress >= 1.0 and iteration + 1 < config.iterations:
            logger.info("stopping after %d iterations: time budget reached", iteration + 1)
            break
    seconds = time.perf_counter() - start
    info = {
        "dataset": str(dataset.root),
        "iterations": len(losses),
        "final_loss": round(float(np.mean(losses[-20:])), 4),
        "seconds": round(seconds, 1),
        "settings": to_jsonable(replace(config, model=model_config)),
    }
    save_model(net.eval(), replace(model_config, training=info), Path(out))
    return TrainInteractiveResult(model_dir=Path(out), losses=losses, seconds=seconds)


Batch = tuple[list[Sample], list[tuple[np.ndarray, ...]]]


def simulate_first_prompts(
    data: _Slices, rng: np.random.Generator, batch_size: int, size: int
) -> Batch:
    """``batch_size`` crops of ``size``² and a simulated user's first prompt on each.

    ``data`` is anything with ``pick(rng)``, ``plane(i, axis, k)``, ``labels`` and ``ndim``
    like the in-memory dataset here (the universal trainer passes its pool of generated tasks).
    """
    samples = [_sample(data, rng, size) for _ in range(batch_size)]
    return samples, [_first_prompt(gt, nb, box, rng) for _, gt, nb, box in samples]


def train_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: _Slices | None,
    rng: np.random.Generator,
    *,
    batch_size: int,
    max_rounds: int,
    model_config: InteractiveModelConfig,
    learning_rate: float,
    device: str = "cpu",
    batch: Batch | None = None,
) -> float:
    """One optimisation step on a batch of simulated interactions; returns the loss.

    The crops and first prompts come from ``batch`` when given (made elsewhere, e.g. by
    worker processes), else from :func:`simulate_first_prompts` on ``data``. Then
    0-``max_rounds`` correction rounds run the network without gradients and add a correction
    each; the loss (Dice + BCE) is taken after the last round.
    """
    if batch is None:
        if data is None:
            raise ConfigError("train_step needs data or a ready batch")
        batch = simulate_first_prompts(data, rng, batch_size, model_config.size)
    samples, prompts = batch
    gts = np.stack([s[1] for s in samples])
    net.eval()
    for _ in range(int(rng.integers(0, max_rounds + 1))):
        with torch.inference_mode():
            logits = net(_batch(samples, prompts, model_config).to(device))
        preds = logits[:, 0].float().cpu().numpy() > 0
        prompts = [
            _correct(p, pred, gt, rng) for p, pred, gt in zip(prompts, preds, gts, strict=True)
        ]
    net.train()
    logits = net(_batch(samples, prompts, model_config).to(device))
    target = torch.from_numpy(gts[:, None].astype(np.float32)).to(device)
    loss = _LOSS(logits.float(), target)
    optimizer.zero_grad()
    loss.backward()
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    optimizer.step()
    return float(loss.detach())


_LOSS = DiceCELoss(sigmoid=True)


def _progress(done: int, seconds: float, config: InteractiveTrainConfig) -> float:
    """Fraction of training done: iterations or wall time, whichever runs out first."""
    return max(done / config.iterations, seconds / (60 * config.max_minutes))


def _cosine(base: float, progress: float) -> float:
    """Cosine learning-rate decay from ``base`` to 2 % of it at ``progress`` 1."""
    return base * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0))))


def _batch(
    samples: list[Sample],
    prompts: list[tuple[np.ndarray, ...]],
    model_config: InteractiveModelConfig,
) -> torch.Tensor:
    images = np.stack([sample[0] for sample in samples])
    box, pos, neg, prev = (np.stack(maps) for maps in zip(*prompts, strict=True))
    return encode(*(torch.from_numpy(a) for a in (images, box, pos, neg, prev)), model_config)


def _correct(
    prompt: tuple[np.ndarray, ...], pred: np.ndarray, gt: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Add one correction (click at the error's distance maximum, or a stroke) to ``prompt``."""
    box, pos, neg, _ = prompt
    pos, neg = pos.copy(), neg.copy()
    fix = error_scribble(pred, gt, rng) if rng.random() < 0.3 else error_click(pred, gt, rng)
    if fix is not None:
        maps = render_prompts([fix], gt.shape)
        pos |= maps.positive
        neg |= maps.negative
    return box, pos, neg, pred.astype(np.float32) * 2 - 1
