"""The learned engine: a promptable 2D network, slice by slice with propagation in 3D.

Why slice-wise: on a CPU a small 2D U-Net at 128² answers in milliseconds, while a 3D network
on a 128³ region costs seconds and needs far more training data. In 3D the engine picks a
processing axis (the slice a box or stroke was drawn on, else the coarsest axis) and first
predicts the seed slices in one batch: the slices holding clicks or strokes and, on a first
prediction, every slice a box crosses, each with its own box cross-section (the network's
commonest training case; predicting them independently measured better on the brain example
than propagating from the box's centre slice, where a weak network's errors drift). From the
seeds it sweeps outward, all sweeps advancing together, one batch per step: each next slice
gets the slice before it as its "previous mask" channel plus its own prompts (when correcting,
its own old mask with the previous slice's changes carried over). A sweep stops where the
object ends (empty slice), where a 3D box ends, or, when correcting, where a slice no longer
changes or the edit has gone as deep as it is wide on its own slice. A correction keeps only
the changes connected to the clicks and strokes on their slice, and on the slices it spreads
to only the changes within 1 px of the previous slice's changes, so it acts where the user
pointed. Last, :func:`respect_clicks` makes every click hold whatever the network said.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cc3d
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from medseg._typing import BoolArray, FloatArray, SpacingMM
from medseg.errors import GeometryError
from medseg.interactive.intensity import normalize_intensity
from medseg.interactive.network import InteractiveModelConfig, encode, load_model
from medseg.interactive.prompts import Box, Click, Prompt, PromptMaps, Scribble, render_prompts

_NEIGHBOURS = np.ones((3, 3), dtype=bool)


class LearnedEngine:
    """Promptable 2D network behind the :class:`~medseg.interactive.engine.Engine` interface.

    Parameters
    ----------
    net : torch.nn.Module
        Network from :func:`~medseg.interactive.network.build_network`.
    config : InteractiveModelConfig
        Its configuration.
    axis : int, optional
        Force the 3D processing axis (default: chosen from the prompts and spacing).
    """

    name = "learned"

    def __init__(
        self, net: nn.Module, config: InteractiveModelConfig, *, axis: int | None = None
    ) -> None:
        self.net = net.eval()
        self.config = config
        self.axis = axis

    @classmethod
    def load(cls, folder: Path, *, axis: int | None = None) -> LearnedEngine:
        """Load a model folder written by ``medseg train-interactive``."""
        net, config = load_model(folder)
        engine = cls(net, config, axis=axis)
        engine.name = f"learned:{Path(folder).name}"
        return engine

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Network logits for encoded inputs of shape (B, C + 4, size, size)."""
        return self.net(batch)

    def predict(
        self,
        roi_image: FloatArray,
        prompts: Sequence[Prompt],
        prev_mask: BoolArray | None,
        *,
        spacing: SpacingMM,
    ) -> FloatArray:
        """See :meth:`medseg.interactive.engine.Engine.predict`."""
        channels = roi_image.shape[0]
        if channels != self.config.image_channels:
            raise GeometryError(
                f"the model expects {self.config.image_channels} image channel(s), "
                f"the image has {channels}"
            )
        shape = roi_image.shape[1:]
        maps = render_prompts(prompts, shape)
        if len(shape) == 2:
            prev = _previous(prev_mask, shape)
            batch = self._encode(
                roi_image[None],
                maps.box[None],
                maps.positive[None],
                maps.negative[None],
                prev[None],
            )
            prob = self._probabilities(batch, shape)[0]
            anchor = maps.positive | maps.negative
            if prev_mask is not None and prev_mask.any() and anchor.any():
                prob = _focus(prob, prev_mask, anchor)
        else:
            axis = self._choose_axis(prompts, spacing)
            prob = _Propagation(self, roi_image, maps, prompts, prev_mask, axis, spacing).run()
        return respect_clicks(prob, prompts)

    def _encode(
        self,
        image: np.ndarray,
        box: np.ndarray,
        positive: np.ndarray,
        negative: np.ndarray,
        previous: np.ndarray,
    ) -> torch.Tensor:
        """Network input for a batch: image (B, C, H, W), maps and previous mask (B, H, W)."""
        return encode(
            torch.from_numpy(normalize_intensity(image, spatial_dims=2)),
            torch.from_numpy(box),
            torch.from_numpy(positive),
            torch.from_numpy(negative),
            torch.from_numpy(previous),
            self.config,
        )

    def _probabilities(self, batch: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
        logits = F.interpolate(self.logits(batch), size=shape, mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)[:, 0].numpy().astype(np.float32)

    def _choose_axis(self, prompts: Sequence[Prompt], spacing: SpacingMM) -> int:
        if self.axis is not None:
            return self.axis
        for prompt in prompts:
            if isinstance(prompt, Box) and prompt.plane_axis is not None:
                return prompt.plane_axis
            if isinstance(prompt, Scribble):
                flat = np.flatnonzero(np.ptp(prompt.voxels, axis=0) == 0)
                if flat.size == 1:
                    return int(flat[0])
        sp = np.asarray(spacing, dtype=float)
        return int(np.argmax(sp)) if sp.max() > 1.5 * sp.min() else 0


def respect_clicks(
    prob: FloatArray, prompts: Sequence[Prompt], *, blob_extent: int = 12
) -> FloatArray:
    """Make every click hold in the answer, whatever the network said.

    Users of interactive tools name ignored clicks as their main frustration (a background
    click that removes nothing leaves a simulated user, and a real one, clicking on the same
    spot forever). So a positive click is object within 1 voxel of it, and a negative click
    that lands on object removes the connected piece it lands on (26- or 8-connected) when
    that piece is a blob shorter than ``blob_extent`` voxels on every axis that holds no
    positive click, otherwise a ball of radius 2 voxels around the click.

    Parameters
    ----------
    prob : ndarray, shape (Z, Y, X) or (Y, X)
        Object probabilities on the region of interest.
    prompts : sequence of Prompt
        All prompts, in region-of-interest coordinates; only clicks inside it count.
    """
    clicks = [
        p
        for p in prompts
        if isinstance(p, Click)
        and all(0 <= c < s for c, s in zip(p.point, prob.shape, strict=True))
    ]
    if not clicks:
        return prob
    prob = prob.copy()
    positive = [c.point for c in clicks if c.positive]
    for click in (c for c in clicks if not c.positive and prob[c.point] >= 0.5):
        pieces = cc3d.connected_components(prob >= 0.5, connectivity=26 if prob.ndim == 3 else 8)
        piece = pieces == pieces[click.point]
        small = np.all(np.ptp(np.argwhere(piece), axis=0) < blob_extent)
        if small and not any(piece[p] for p in positive):
            prob[piece] = 0.0
        else:
            prob[_ball_at(click.point, 2, prob.shape)] = 0.0
    for click in (c for c in clicks if c.positive):
        prob[_ball_at(click.point, 1, prob.shape)] = 1.0
    return prob


def _ball_at(centre: tuple[int, ...], radius: int, shape: tuple[int, ...]) -> BoolArray:
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def _focus(prob: np.ndarray, old: BoolArray, anchor: BoolArray) -> np.ndarray:
    """Keep the network's changes to ``old`` only where they connect to ``anchor``.

    A correction then acts around the clicks and strokes (or around the changes of the slice
    it propagates from) and leaves the rest of the mask as it was. Shapes (H, W).
    """
    changed = (prob >= 0.5) != old
    labels, _ = ndimage.label(changed, structure=_NEIGHBOURS)
    touched = ndimage.binary_dilation(anchor, structure=_NEIGHBOURS, iterations=2)
    ids = np.unique(labels[touched & changed])
    keep = np.isin(labels, ids[ids > 0])
    return np.where(keep, prob, old.astype(np.float32))


def _within(prob: np.ndarray, old: BoolArray, moved: BoolArray) -> np.ndarray:
    """Keep the network's changes to ``old`` only within 1 px of ``moved``.

    ``moved`` holds the changes of the slice a correction propagates from: the edit travels
    through the volume as a tube around where the user pointed instead of letting the
    network redraw whole slices. Shapes (H, W).
    """
    near = ndimage.binary_dilation(moved, structure=_NEIGHBOURS)
    return np.where(near, prob, old.astype(np.float32))


def _previous(mask: BoolArray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The previous-mask channel: ``2 * mask - 1``, zeros before the first prediction."""
    return np.zeros(shape, np.float32) if mask is None else mask.astype(np.float32) * 2 - 1


class _Propagation:
    """One 3D prediction: seed slices in a batch, then sequential sweeps (see module doc)."""

    def __init__(
        self,
        engine: LearnedEngine,
        image: np.ndarray,
        maps: PromptMaps,
        prompts: Sequence[Prompt],
        prev_mask: BoolArray | None,
        axis: int,
        spacing: SpacingMM,
    ) -> None:
        self.engine = engine
        self.axis = axis
        in_plane = [float(v) for a, v in enumerate(spacing) if a != axis]
        self.aspect = float(np.mean(in_plane)) / float(spacing[axis])
        self.image = np.moveaxis(image, axis + 1, 1)
        self.box = np.moveaxis(maps.box, axis, 0)
        self.pos = np.moveaxis(maps.positive, axis, 0)
        self.neg = np.moveaxis(maps.negative, axis, 0)
        self.old = None if prev_mask is None else np.moveaxis(prev_mask, axis, 0)
        depth = self.image.shape[1]
        self.allowed = np.ones(depth, dtype=bool)
        for prompt in prompts:  # a 3D box bounds the object along the processing axis
            if isinstance(prompt, Box) and prompt.plane_axis is None:
                lo, hi = prompt.lo[axis], prompt.hi[axis]
                self.allowed[: max(lo, 0)] = False
                self.allowed[hi + 1 :] = False
        self.correcting = self.old is not None and bool(self.old.any())
        self.prob = (
            self.old.astype(np.float32) if self.correcting else np.zeros(self.box.shape, np.float32)
        )
        self.prob[~self.allowed] = 0.0

    def _seeds(self) -> list[int]:
        """Slices predicted first, in one batch: those with clicks or strokes and, on a first
        prediction, every slice a box crosses (each with its own cross-section of the box)."""
        seeded = self.pos.any(axis=(1, 2)) | self.neg.any(axis=(1, 2))
        if not self.correcting:
            seeded |= self.box.any(axis=(1, 2))
        return np.flatnonzero(seeded & self.allowed).tolist()

    def _predict(self, slices: Sequence[int], previous: Sequence[BoolArray | None]) -> np.ndarray:
        """Probabilities of ``slices`` in one batch, given their previous-mask channels."""
        shape = self.box.shape[1:]
        batch = self.engine._encode(
            np.moveaxis(self.image[:, slices], 1, 0),
            self.box[slices],
            self.pos[slices],
            self.neg[slices],
            np.stack([_previous(prev, shape) for prev in previous]),
        )
        return self.engine._probabilities(batch, shape)

    def _predict_seeds(self, seeds: list[int]) -> None:
        if not self.correcting:
            self.prob[seeds] = self._predict(seeds, [None] * len(seeds))
            return
        probs = self._predict(seeds, [self.old[k] for k in seeds])
        for k, prob in zip(seeds, probs, strict=True):
            self.prob[k] = _focus(prob, self.old[k], self.pos[k] | self.neg[k])

    def _reach(self, seed: int) -> float:
        """How many slices a sweep from ``seed`` may go: unbounded on a first prediction; for
        a correction, the radius of the disk as large as the seed slice's change, in slices,
        so that a click's edit spreads about as far through the volume as across its slice."""
        if not self.correcting:
            return np.inf
        area = float(((self.prob[seed] >= 0.5) != self.old[seed]).sum())
        return np.sqrt(area / np.pi) * self.aspect

    def run(self) -> np.ndarray:
        """Predict the seeds, then sweep outward from each, all sweeps advancing together
        (one batch per step) until each stops."""
        seeds = self._seeds()
        if seeds:
            self._predict_seeds(seeds)
        done = set(seeds)
        fronts = [(k, step, self._reach(k)) for k in seeds for step in (1, -1)]
        while fronts:
            ahead: dict[int, tuple[int, float]] = {}
            for k, step, reach in fronts:
                n = k + step
                if reach >= 1 and 0 <= n < len(self.prob) and self.allowed[n] and n not in done:
                    ahead.setdefault(n, (step, reach - 1))
            if not ahead:
                break
            slices = list(ahead)
            probs = self._predict(slices, [self._carried(n, n - ahead[n][0]) for n in slices])
            fronts = []
            for n, new in zip(slices, probs, strict=True):
                step, reach = ahead[n]
                if self.correcting:
                    moved = (self.prob[n - step] >= 0.5) != self.old[n - step]
                    new = _within(new, self.old[n], moved)
                self.prob[n] = new
                done.add(n)
                if not self._stop(n, new >= 0.5):
                    fronts.append((n, step, reach))
        return np.moveaxis(self.prob, 0, self.axis)

    def _carried(self, k: int, source: int) -> BoolArray:
        """Previous-mask channel of slice ``k`` when propagating from slice ``source``.

        A first prediction takes the source slice's fresh mask. A correction keeps slice
        ``k``'s old mask and carries over only what changed on the source slice, so an edit
        spreads to its neighbours without redrawing the rest of the object.
        """
        fresh = self.prob[source] >= 0.5
        if not self.correcting:
            return fresh
        changed = fresh != self.old[source]
        carried = self.old[k].copy()
        carried[changed] = fresh[changed]
        return carried

    def _stop(self, k: int, new: np.ndarray) -> bool:
        if not self.correcting:
            return not new.any()
        return not (new != self.old[k]).any()
