"""A learned nuclei head: foreground plus StarDist's object probability, decoded by watershed.

The network (a small 2D U-Net) predicts two maps per pixel: foreground, and the *object
probability* of StarDist (the distance to the instance's border, divided by the instance's
largest such distance: 1 at the centre, near 0 at the edge). Touching nuclei share foreground
but their object probability dips between them, so its peaks are one marker per nucleus; a
marker watershed (:func:`medseg.wsi.nuclei.instances_from_maps`) gives the instances. StarDist
itself also regresses star-convex ray distances and keeps polygons by NMS; this head keeps the
part that separates touching nuclei and replaces the polygons by the watershed.

Weights are saved as safetensors with a JSON config; training is time-budgeted on synthetic
microscopy (:func:`medseg.wsi.nuclei.synthetic_nuclei`), so no data is downloaded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from medseg._atomic import atomic_path, write_text_atomic
from medseg.errors import ModelFormatError
from medseg.wsi.nuclei import NucleiSpec, instances_from_maps, synthetic_nuclei

logger = logging.getLogger(__name__)
WEIGHTS = "nuclei_head.safetensors"
CONFIG = "nuclei_head.json"


@dataclass(frozen=True, kw_only=True)
class NucleiHeadConfig:
    """Network and training settings (JSON round-trip).

    Attributes
    ----------
    width : int
        Channels of the first level (doubled twice).
    patch : int
        Training image edge in pixels.
    batch_size : int
    pool : int
        Synthetic images generated once and sampled (flipped, rotated) for every batch.
    learning_rate : float
    seconds : float
        Training time budget.
    max_iterations : int
        Upper bound on iterations whatever the budget.
    seed : int
    """

    width: int = 16
    patch: int = 128
    batch_size: int = 8
    pool: int = 32
    learning_rate: float = 3e-3
    seconds: float = 120.0
    max_iterations: int = 100_000
    seed: int = 0


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.InstanceNorm2d(cout), nn.LeakyReLU(0.01),
        nn.Conv2d(cout, cout, 3, padding=1), nn.InstanceNorm2d(cout), nn.LeakyReLU(0.01),
    )  # fmt: skip


class NucleiUNet(nn.Module):
    """Three-level U-Net, ``(B, 1, H, W)`` -> logits ``(B, 2, H, W)`` (foreground, centre)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2, self.enc3 = _block(1, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = _block(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = _block(2 * w, w)
        self.head = nn.Conv2d(w, 2, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


def object_probability(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.float32]:
    """StarDist's target: per-instance distance to the border over its maximum, 0 outside."""
    from scipy import ndimage

    out = np.zeros(labels.shape, dtype=np.float32)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        mask = labels[grown] == index
        dist = ndimage.distance_transform_edt(mask)
        out[grown][mask] = (dist / dist.max())[mask]
    return out


def _pool(config: NucleiHeadConfig, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """``config.pool`` synthetic images ``(N, 1, P, P)`` and targets ``(N, 2, P, P)``."""
    images, targets = [], []
    count = int(40 * (config.patch / 128) ** 2)
    spec = NucleiSpec(shape=(config.patch, config.patch), count=count)
    for _ in range(config.pool):
        image, labels = synthetic_nuclei(spec, rng)
        images.append(image)
        targets.append(np.stack([labels > 0, object_probability(labels)]).astype(np.float32))
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(targets))


def _sample(
    images: torch.Tensor, targets: torch.Tensor, size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch from the pool, each item flipped and rotated by a random multiple of 90°."""
    picks = rng.integers(0, len(images), size=size)
    xs, ys = [], []
    for index in picks:
        turns, flip = int(rng.integers(4)), bool(rng.integers(2))
        x, y = images[index].rot90(turns, (1, 2)), targets[index].rot90(turns, (1, 2))
        xs.append(x.flip(-1) if flip else x)
        ys.append(y.flip(-1) if flip else y)
    return torch.stack(xs), torch.stack(ys)


@dataclass(frozen=True, kw_only=True)
class TrainingSummary:
    """Iterations run, seconds and the first/last training loss."""

    iterations: int
    seconds: float
    first_loss: float
    last_loss: float


def train_nuclei_head(
    output: Path | str,
    config: NucleiHeadConfig | None = None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> TrainingSummary:
    """Train the head on synthetic nuclei within ``config.seconds`` and save it to ``output``.

    The budget includes generating the pool. Torch's thread count is the caller's (one thread
    is fastest for this small network on a shared CPU).

    Returns
    -------
    TrainingSummary
    """
    config = config or NucleiHeadConfig()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = NucleiUNet(config.width)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    started = time.perf_counter()
    pool_images, pool_targets = _pool(config, rng)
    losses: list[float] = []
    iteration = 0
    while iteration < config.max_iterations and time.perf_counter() - started < config.seconds:
        images, targets = _sample(pool_images, pool_targets, config.batch_size, rng)
        loss = loss_fn(net(images), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        iteration += 1
        if on_progress is not None:
            on_progress(iteration, config.max_iterations)
    save_nuclei_head(net, config, output)
    tail = losses[-10:] or [float("nan")]
    summary = TrainingSummary(
        iterations=iteration,
        seconds=time.perf_counter() - started,
        first_loss=losses[0] if losses else float("nan"),
        last_loss=float(np.mean(tail)),
    )
    logger.info("nuclei head: %s", summary)
    return summary


def save_nuclei_head(net: NucleiUNet, config: NucleiHeadConfig, output: Path) -> None:
    """Weights (safetensors) and config (JSON) into ``output``."""
    from safetensors.torch import save_file

    with atomic_path(output / WEIGHTS) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    write_text_atomic(json.dumps(asdict(config), indent=2, sort_keys=True), output / CONFIG)


class NucleiHead:
    """A trained head: ``predict(image) -> instances``.

    Parameters
    ----------
    folder : path
        Holds ``nuclei_head.json`` and ``nuclei_head.safetensors``.

    Raises
    ------
    ModelFormatError
        Missing or unreadable files.
    """

    def __init__(self, folder: Path | str) -> None:
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            config = NucleiHeadConfig(**json.loads((folder / CONFIG).read_text(encoding="utf-8")))
            state = load_file(str(folder / WEIGHTS))
            self.net = NucleiUNet(config.width)
            self.net.load_state_dict(state)
        except (OSError, ValueError, TypeError, RuntimeError) as err:
            raise ModelFormatError(f"{folder}: not a nuclei head ({err})") from err
        self.net.eval()
        self.config = config

    def maps(self, image: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """Foreground and object probability ``(2, H, W)`` of a ``(1, H, W)`` image in [0, 1]."""
        height, width = image.shape[-2:]
        pad = ((0, 0), (0, -height % 4), (0, -width % 4))
        padded = np.pad(np.asarray(image, dtype=np.float32), pad, mode="reflect")
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(padded)[None])[0]
        return torch.sigmoid(logits).numpy()[:, :height, :width]

    def predict(
        self, image: npt.NDArray[np.floating], *, min_distance_px: int = 3
    ) -> npt.NDArray[np.int32]:
        """Instances ``(H, W)`` of a ``(1, H, W)`` image in [0, 1]."""
        foreground, centre = self.maps(image)
        return instances_from_maps(
            foreground, centre * (foreground > 0.5), min_distance_px=min_distance_px
        )
