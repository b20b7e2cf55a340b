"""Lesion synthesis as augmentation: synthetic lesions pasted into plausible tissue of a patch.

When annotated lesions are scarce, a network sees few of them; pasting synthetic ones into
training patches multiplies them (synthetic MS lesions in healthy white matter; LeFusion and
inpainting augmentation do the same with generative models). Here every ingredient is learned
from the fold's training cases, before training (:func:`collect_lesion_statistics`):

- **where**: the host labels are those that surround the training lesions (the labels of a
  2-voxel shell around each lesion that make up at least a quarter of it, or the most frequent
  one), unless the plan names them; inside a patch a lesion goes only where the label is a host
  label *and* the intensity lies within the 1-99 % range of the host voxels of that shell
  (widened by half that range on each side; of all host voxels when the shell has fewer than
  200), so a host class that is "background" does not put lesions in air;
- **shape**: smooth irregular ellipsoids from :func:`medseg.data.synth.synthesize_lesions`
  (the generator of the brain example and the universal-training tasks), clipped to the host
  tissue, with equivalent radii spanning those of the training lesions (x0.8 to x1.2);
- **intensity**: each synthetic lesion copies the intensity histogram of one training lesion,
  drawn at random: a smooth random texture is ranked and mapped through that lesion's quantile
  function (21 quantiles per channel), so its voxel values follow the training lesion's
  distribution and stay within its range;
- **soft border**: the lesion is blended into the host with a Gaussian-blurred opacity
  (sigma 0.7 voxel; at least 0.5 on the lesion's voxels, 1 inside its 1-voxel erosion); the
  lesion's voxels get the lesion label.

:class:`RandLesionSynthesisd` applies it inside the MONAI augmentation, before the spatial and
intensity transforms, so pasted lesions are deformed, blurred and re-contrasted like real ones.
Arrays are channel-first, ``(C, Z, Y, X)`` or ``(C, Y, X)``; spacings in mm in the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_numpy
from scipy import ndimage

from medseg.data.synth import synthesize_lesions
from medseg.errors import ConfigError, DatasetError
from medseg.plan.plan import Configuration, Plan, TrainingConfig
from medseg.train.sampling import CaseSource

logger = logging.getLogger(__name__)

QUANTILES = np.linspace(0.0, 1.0, 21)
"""Levels of the per-lesion intensity quantiles kept (0, 5, ..., 100 %)."""
SHELL_VOXELS = 2
HOST_SHARE = 0.25
EDGE_SIGMA_VOXELS = 0.7
MIN_WINDOW_VOXELS = 200
"""Fewer host voxels next to the lesions than this: the window comes from all host voxels."""


@dataclass(frozen=True, kw_only=True)
class LesionStatistics:
    """What the training lesions look like, on the preprocessed (network) grid.

    Attributes
    ----------
    lesion_label : int
    host_labels : tuple of int
        Labels a synthetic lesion may replace.
    quantiles : ndarray of float32, shape (N, C, 21)
        Intensity quantiles (levels :data:`QUANTILES`) of each of the N training lesions, per
        channel.
    host_window : ndarray of float32, shape (C, 2)
        Intensities where lesions may go: the 1-99 % range of host-label voxels next to the
        training lesions, widened by half that range on each side.
    radius_mm : (float, float)
        Range of equivalent radii of synthetic lesions (sphere in 3D, disc of the largest
        cross-section in 2D).
    cases : int
        Training cases that contain lesions.
    """

    lesion_label: int
    host_labels: tuple[int, ...]
    quantiles: npt.NDArray[np.float32]
    host_window: npt.NDArray[np.float32]
    radius_mm: tuple[float, float]
    cases: int

    def describe(self) -> str:
        """One line for the log."""
        low, high = float(self.quantiles[:, 0, 0].min()), float(self.quantiles[:, 0, -1].max())
        return (
            f"{len(self.quantiles)} training lesions (label {self.lesion_label}) in {self.cases} "
            f"cases; host labels {list(self.host_labels)}; radius {self.radius_mm[0]:.2g}-"
            f"{self.radius_mm[1]:.2g} mm; channel-0 intensity {low:.3g} to {high:.3g}"
        )


def lesion_synthesis_transform(
    source: CaseSource, train_ids: Sequence[str], plan: Plan, config: Configuration
) -> RandLesionSynthesisd | None:
    """The configuration's lesion synthesis, learned from ``train_ids``; ``None`` when it is off.

    Raises
    ------
    ConfigError, DatasetError
        As :func:`resolve_lesion_label` and :func:`collect_lesion_statistics`.
    """
    settings = config.training.lesion_synthesis
    if settings.probability <= 0:
        return None
    stats = collect_lesion_statistics(
        source,
        train_ids,
        lesion_label=resolve_lesion_label(plan, config.training),
        host_labels=settings.host_labels,
        spacing=config.spacing,
        ignore_label=plan.ignore_label,
    )
    logger.info("lesion synthesis (p %g): %s", settings.probability, stats.describe())
    return RandLesionSynthesisd(
        stats, config.spacing, prob=settings.probability, max_lesions=settings.max_lesions
    )


def resolve_lesion_label(plan: Plan, training: TrainingConfig) -> int:
    """The label that synthetic lesions get: the plan field, or the plan's single rare class.

    Raises
    ------
    ConfigError
        If the label is not one of the plan's labels, or it is not set and the plan has no
        single rare class to take it from.
    """
    configured = training.lesion_synthesis.lesion_label
    values = {v for v in plan.labels.values() if v != 0 and v != plan.ignore_label}
    if configured is not None:
        if configured not in values:
            raise ConfigError(
                f"training.lesion_synthesis.lesion_label {configured} is not a foreground label "
                f"of the plan (labels: {plan.labels}); set it to the lesion class"
            )
        return int(configured)
    rare = [v for v in training.oversample_labels if v in values]
    if len(rare) != 1:
        raise ConfigError(
            "lesion synthesis needs a lesion class: the plan has "
            f"{len(rare) or 'no'} rare classes ({rare}); set "
            "training.lesion_synthesis.lesion_label to the lesion label value"
        )
    return int(rare[0])


def collect_lesion_statistics(
    source: CaseSource,
    case_ids: Sequence[str],
    *,
    lesion_label: int,
    host_labels: Sequence[int] = (),
    spacing: Sequence[float],
    ignore_label: int | None = None,
) -> LesionStatistics:
    """Intensities, sizes and surroundings of the lesions of ``case_ids`` (preprocessed cases).

    Parameters
    ----------
    source : CaseSource
        The preprocessed cache; ``load`` gives ``(image (C, Z, Y, X), label (1, Z, Y, X), _)``.
    case_ids : sequence of str
        The fold's training cases (never its validation cases).
    lesion_label : int
    host_labels : sequence of int
        Labels lesions may be pasted into; empty: those around the training lesions.
    spacing : sequence of float
        The configuration's spacing in mm: 3 values (the cached grid; radii of spheres of the
        lesion volume) or 2 for a ``2d`` configuration (in-plane; radii of discs of the largest
        cross-section along axis 0).
    ignore_label : int, optional
        Never a host label.

    Returns
    -------
    LesionStatistics

    Raises
    ------
    DatasetError
        If no training case has a voxel of ``lesion_label``, or no voxel of the host labels lies
        next to a lesion.
    """
    import cc3d

    quantiles, radii, shell_labels, shell_values = [], [], [], []
    cases = 0
    for case_id in case_ids:
        image, label, _ = source.load(case_id, mmap=True)
        label = np.asarray(label[0])
        lesions = label == lesion_label
        if not lesions.any():
            continue
        cases += 1
        image = np.asarray(image, dtype=np.float32)
        components = cc3d.connected_components(lesions.astype(np.uint8), connectivity=26)
        for index, box in enumerate(ndimage.find_objects(components), start=1):
            if box is None:
                continue
            grown = tuple(
                slice(max(0, s.start - SHELL_VOXELS), min(n, s.stop + SHELL_VOXELS))
                for s, n in zip(box, label.shape, strict=True)
            )
            mask = components[grown] == index
            values = image[(slice(None), *grown)][:, mask]
            quantiles.append(np.quantile(values, QUANTILES, axis=1).T)
            radii.append(_equivalent_radius(mask, spacing))
            shell = ndimage.binary_dilation(mask, iterations=SHELL_VOXELS) & ~lesions[grown]
            shell_labels.append(label[grown][shell])
            shell_values.append(image[(slice(None), *grown)][:, shell])
    if not quantiles:
        raise DatasetError(
            f"lesion synthesis: none of the {len(case_ids)} training cases has a voxel of the "
            f"lesion label {lesion_label}; set training.lesion_synthesis.lesion_label or turn "
            "synthesis off (probability 0)"
        )
    around = np.concatenate(shell_labels)
    hosts = tuple(int(v) for v in host_labels) or _host_labels(around, lesion_label, ignore_label)
    near = np.concatenate(shell_values, axis=1)[:, np.isin(around, hosts)]
    if near.shape[1] == 0:
        raise DatasetError(
            f"lesion synthesis: no voxel of the host labels {list(hosts)} touches a training "
            f"lesion (labels around the lesions: {sorted(set(around.tolist()))}); set "
            "training.lesion_synthesis.host_labels to the tissue the lesions sit in"
        )
    if near.shape[1] < MIN_WINDOW_VOXELS:
        near = _host_voxels(source, case_ids, hosts)
    low, high = np.percentile(radii, [5, 95]) if len(radii) >= 10 else (min(radii), max(radii))
    return LesionStatistics(
        lesion_label=int(lesion_label),
        host_labels=hosts,
        quantiles=np.stack(quantiles).astype(np.float32),
        host_window=_widened(np.percentile(near, [1, 99], axis=1).T),
        radius_mm=(0.8 * float(low), 1.2 * float(high)),
        cases=cases,
    )


def paste_lesions(
    image: npt.NDArray[np.floating],
    label: npt.NDArray[np.integer],
    stats: LesionStatistics,
    rng: np.random.Generator,
    *,
    spacing: Sequence[float],
    max_lesions: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.integer], int]:
    """Paste 1 to ``max_lesions`` synthetic lesions into the host tissue of one patch.

    Parameters
    ----------
    image : ndarray of float, shape (C, *spatial)
        Preprocessed patch (not modified).
    label : ndarray of int, shape (1, *spatial)
        Its labels (not modified).
    stats : LesionStatistics
    rng : numpy.random.Generator
        All randomness; the same state gives the same result.
    spacing : sequence of float
        Voxel size of the patch in mm, spatial axis order.
    max_lesions : int

    Returns
    -------
    image : ndarray of float32, shape (C, *spatial)
    label : ndarray, shape (1, *spatial), dtype of ``label``
    pasted : int
        Lesions placed (fewer than drawn, or 0, where the patch has little or no host tissue).
    """
    image = np.array(image, dtype=np.float32)
    label = np.array(label)
    window = stats.host_window.reshape(-1, 2, *[1] * (image.ndim - 1))
    host = np.zeros(label.shape[1:], dtype=bool)
    for value in stats.host_labels:
        host |= label[0] == value
    host &= ((image >= window[:, 0]) & (image <= window[:, 1])).all(axis=0)
    lesions = synthesize_lesions(
        host,
        rng,
        count_range=(1, max_lesions),
        radius_range_mm=stats.radius_mm,
        spacing=tuple(spacing),
    )
    pasted = int(lesions.max(initial=0))
    for index, box in enumerate(ndimage.find_objects(lesions), start=1):
        if box is not None:
            _paste_one(image, label, lesions, index, box, stats, rng)
    return image, label, pasted


class RandLesionSynthesisd(RandomizableTransform, MapTransform):
    """MONAI dictionary transform: :func:`paste_lesions` on ``d["image"]``, ``d["label"]``.

    Parameters
    ----------
    stats : LesionStatistics
    spacing : sequence of float
        Voxel size of the patches in mm (the configuration's spacing).
    prob : float
        Probability that a sample gets lesions.
    max_lesions : int
    """

    def __init__(
        self,
        stats: LesionStatistics,
        spacing: Sequence[float],
        *,
        prob: float,
        max_lesions: int,
        keys: Sequence[Hashable] = ("image", "label"),
    ) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.stats = stats
        self.spacing = tuple(float(s) for s in spacing)
        self.max_lesions = max_lesions

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        out = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return out
        rng = np.random.default_rng(self.R.randint(0, 2**31 - 1, size=4))
        image, label = (convert_to_numpy(out[k]) for k in self.keys)
        image, label, _ = paste_lesions(
            image, label, self.stats, rng, spacing=self.spacing, max_lesions=self.max_lesions
        )
        out[self.keys[0]] = torch.from_numpy(image)
        out[self.keys[1]] = torch.from_numpy(label)
        return out


def _paste_one(
    image: npt.NDArray[np.float32],
    label: npt.NDArray[np.integer],
    lesions: npt.NDArray[np.integer],
    index: int,
    tight: tuple[slice, ...],
    stats: LesionStatistics,
    rng: np.random.Generator,
) -> None:
    """Blend lesion ``index`` of ``lesions`` (bounding box ``tight``) into ``image`` and label
    it, in place."""
    pad = 3
    box = tuple(
        slice(max(0, s.start - pad), min(n, s.stop + pad))
        for s, n in zip(tight, lesions.shape, strict=True)
    )
    inside = lesions[box] == index
    texture = ndimage.gaussian_filter(rng.standard_normal(inside.shape), 1.5)
    texture = texture / max(float(texture.std()), 1e-6) + rng.standard_normal(inside.shape)
    order = np.argsort(np.argsort(texture[inside]))
    levels = (order + 0.5) / inside.sum()
    source = stats.quantiles[int(rng.integers(len(stats.quantiles)))]
    patch = image[(slice(None), *box)]
    alpha = np.clip(ndimage.gaussian_filter(inside.astype(np.float32), EDGE_SIGMA_VOXELS), 0, 1)
    alpha[inside] = np.maximum(alpha[inside], 0.5)
    alpha[ndimage.binary_erosion(inside)] = 1.0
    touched = alpha >= 1e-3
    alpha = alpha[touched]
    for channel, quantiles in enumerate(source):
        lesion = np.full(inside.shape, quantiles[len(QUANTILES) // 2], dtype=np.float32)
        lesion[inside] = np.interp(levels, QUANTILES, quantiles)
        host = patch[channel][touched]
        patch[channel][touched] = alpha * lesion[touched] + (1 - alpha) * host
    label[(slice(0, 1), *box)][0][inside] = stats.lesion_label


def _host_labels(around: npt.NDArray, lesion_label: int, ignore_label: int | None) -> tuple:
    values, counts = np.unique(around, return_counts=True)
    keep = (values != lesion_label) & (values != (ignore_label if ignore_label is not None else -1))
    values, counts = values[keep], counts[keep]
    if values.size == 0:
        return ()
    share = counts / counts.sum()
    common = share >= HOST_SHARE
    chosen = values[common] if common.any() else values[[share.argmax()]]
    return tuple(int(v) for v in chosen)


def _host_voxels(
    source: CaseSource, case_ids: Sequence[str], hosts: Sequence[int]
) -> npt.NDArray[np.float32]:
    """Intensities ``(C, N)`` of up to 20,000 host-label voxels per case (a fixed subsample)."""
    rng = np.random.default_rng(0)
    found = []
    for case_id in case_ids:
        image, label, _ = source.load(case_id, mmap=True)
        where = np.flatnonzero(np.isin(np.asarray(label[0]), hosts))
        if where.size > 20_000:
            where = np.sort(rng.choice(where, 20_000, replace=False))
        found.append(np.asarray(image).reshape(image.shape[0], -1)[:, where])
    return np.concatenate(found, axis=1).astype(np.float32)


def _widened(window: npt.NDArray) -> npt.NDArray[np.float32]:
    """``(C, 2)`` low/high widened by half their spread on each side."""
    spread = (window[:, 1] - window[:, 0])[:, None]
    return (window + np.array([-0.5, 0.5]) * spread).astype(np.float32)


def _equivalent_radius(mask: npt.NDArray[np.bool_], spacing: Sequence[float]) -> float:
    if len(spacing) == 2:
        area = float(mask.sum(axis=(1, 2)).max()) * float(np.prod(spacing))
        return float(np.sqrt(area / np.pi))
    volume = float(mask.sum()) * float(np.prod(spacing))
    return float((3 * volume / (4 * np.pi)) ** (1 / 3))
