"""Planning rules that read only the fingerprint: target spacing, normalisation, resampling axis,
class weights. Each returns its decision and a plain-English reason (the rules: docs/plan.md).
"""

from __future__ import annotations

import math

import numpy as np

from medseg.plan.fingerprint import Fingerprint
from medseg.plan.plan import ChannelNormalization

ANISO_THRESHOLD = 3.0
"""Spacing ratio above which an axis counts as strongly anisotropic (nnU-Net's value)."""
USE_MASK_BELOW = 0.75
"""Z-score inside the nonzero mask when cropping keeps less than this fraction (median)."""
RARE_CLASS_RATIO = 0.1
"""A foreground class with fewer voxels than this fraction of the largest one counts as rare."""
MAX_CLASS_WEIGHT = 10.0
SPARSE_IGNORE_FRACTION = 0.5
"""Labels count as sparse when at least this fraction of their voxels carry the ignore label."""
ENTROPY_WEIGHT = 0.1
"""Weight of the entropy term on unlabelled voxels that the plan adds for sparse labels."""
ABSENCE_WEIGHT = 1.0
"""Weight of the absence term the plan adds when a class has every object marked."""
NEIGHBOURS_2P5D = 2
"""2.5D configurations see 2 slices on each side of the one they segment (5 per channel)."""
PLANAR_SET = ("2.5d", "2.5d_plane1", "2.5d_plane2")
"""The 2.5D configurations over the three planes: the ``multiplane`` ensemble's members."""
SHAPES = {
    "3d": (3, 0, 0),
    "2d": (2, 0, 0),
    "2.5d": (2, 0, NEIGHBOURS_2P5D),
    "2.5d_plane1": (2, 1, NEIGHBOURS_2P5D),
    "2.5d_plane2": (2, 2, NEIGHBOURS_2P5D),
}
"""Planned configurations: (patch dimensions, slice axis, neighbours on each side)."""


def target_spacing(fingerprint: Fingerprint) -> tuple[tuple[float, ...], str]:
    """Median spacing, with nnU-Net's rule for one strongly anisotropic axis.

    If the coarsest median spacing exceeds 3x the largest other one *and* the median size along
    that axis times 3 is below the smallest other median size, that axis takes the 10th
    percentile of its spacings, floored at the largest other spacing.

    Returns
    -------
    spacing : tuple of float
        Target spacing in mm, array order.
    reason : str
    """
    spacings = np.asarray(fingerprint.spacings, dtype=float)
    sizes = np.asarray(fingerprint.shapes_after_crop, dtype=float)
    target = np.median(spacings, axis=0)
    median_size = np.median(sizes, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    text = _fmt(target)
    if not others:
        return tuple(float(t) for t in target), f"target spacing {text} mm: median"
    aniso_spacing = target[worst] > ANISO_THRESHOLD * max(target[others])
    aniso_voxels = median_size[worst] * ANISO_THRESHOLD < min(median_size[others])
    if aniso_spacing and aniso_voxels:
        tenth = float(np.percentile(spacings[:, worst], 10))
        floor = float(max(target[others]))
        if tenth < floor:
            tenth = floor + 1e-5
        ratio = target[worst] / max(target[others])
        target[worst] = tenth
        return tuple(float(t) for t in target), (
            f"target spacing {_fmt(target)} mm: median, except axis {worst}, which takes the "
            f"10th percentile of its spacings ({tenth:.4g} mm) because it is {ratio:.1f}x "
            f"coarser than the others (> {ANISO_THRESHOLD:g}) and has {ANISO_THRESHOLD:g}x fewer "
            "voxels"
        )
    why = (
        "spacing is not strongly anisotropic"
        if not aniso_spacing
        else ("the coarse axis is not 3x shorter in voxels than the others")
    )
    return tuple(float(t) for t in target), f"target spacing {text} mm: median ({why})"


def transpose(spacing: tuple[float, ...]) -> tuple[tuple[int, ...], str]:
    """nnU-Net's axis order for the network: the coarsest axis first, the others in order."""
    worst = int(np.argmax(spacing))
    order = (worst, *[i for i in range(len(spacing)) if i != worst])
    if order == tuple(range(len(spacing))):
        return (
            order,
            "axes kept in image order: axis 0 is already the coarsest (2d slices across it)",
        )
    return order, (
        f"axes transposed to {list(order)}: image axis {worst} has the coarsest spacing, so it "
        "goes first and 2d slices are cut across it; spacings and patches below are in this order"
    )


def separate_axis(
    median_spacing: tuple[float, ...], target: tuple[float, ...]
) -> tuple[int | None, str]:
    """Axis resampled separately with order 0 (nnU-Net's "separate z"), or ``None``.

    Taken from the median original spacing if its max/min ratio exceeds 3, else from the
    target spacing by the same test.
    """
    for name, spacing in (("original", median_spacing), ("target", target)):
        ratio = max(spacing) / min(spacing)
        if ratio > ANISO_THRESHOLD:
            axis = int(np.argmax(spacing))
            return axis, (
                f"axis {axis} is resampled separately (order 0) because the median {name} "
                f"spacing is {ratio:.1f}x anisotropic (> {ANISO_THRESHOLD:g})"
            )
    return None, "no separate resampling axis: spacing is within 3x isotropic"


def normalization(fingerprint: Fingerprint) -> tuple[tuple[ChannelNormalization, ...], list[str]]:
    """One normalisation per channel, chosen from its name (nnU-Net's ``channel_names`` rules)."""
    use_mask = fingerprint.median_crop_fraction < USE_MASK_BELOW
    result, reasons = [], []
    for index in sorted(fingerprint.channel_names):
        name = fingerprint.channel_names[index]
        key = name.lower().replace("-", "_")
        stats = fingerprint.intensity[index]
        if key == "ct":
            result.append(
                ChannelNormalization(
                    scheme="ct",
                    clip_low=stats.percentile_00_5,
                    clip_high=stats.percentile_99_5,
                    mean=stats.mean,
                    std=stats.std,
                )
            )
            reasons.append(
                f"channel {index} ({name}): CT normalisation, clip to the foreground 0.5-99.5 "
                f"percentiles [{stats.percentile_00_5:.4g}, {stats.percentile_99_5:.4g}], then "
                f"z-score with the foreground mean {stats.mean:.4g} and std {stats.std:.4g}"
            )
        elif key in ("nonorm", "none"):
            result.append(ChannelNormalization(scheme="none"))
            reasons.append(f"channel {index} ({name}): no normalisation (named noNorm)")
        elif key == "rescale_to_0_1":
            result.append(ChannelNormalization(scheme="rescale_0_1"))
            reasons.append(f"channel {index} ({name}): rescaled per image to [0, 1]")
        elif key == "rgb_to_0_1":
            result.append(ChannelNormalization(scheme="rgb_0_1"))
            reasons.append(f"channel {index} ({name}): divided by 255")
        else:
            result.append(ChannelNormalization(scheme="zscore", use_mask=use_mask))
            where = (
                f"inside the nonzero mask, because cropping keeps only "
                f"{fingerprint.median_crop_fraction:.0%} of the voxels (< 75%)"
                if use_mask
                else f"over the whole crop (cropping keeps {fingerprint.median_crop_fraction:.0%}"
                " of the voxels, >= 75%)"
            )
            reasons.append(f"channel {index} ({name}): per-image z-score {where}")
    return tuple(result), reasons


def rare_class_weights(
    fingerprint: Fingerprint, label_values: tuple[int, ...]
) -> tuple[tuple[float, ...] | None, tuple[int, ...], float, str]:
    """CE weights and lesion-centred oversampling for rare foreground classes.

    A foreground class is rare when its voxel count is below 10% of the largest foreground class.
    Its CE weight is ``sqrt(largest / count)``, rounded, capped at 10; background and common classes
    keep 1. Measured on a CPU budget (docs/plan.md, "Why a CPU plan is small"): a small lesion class
    was learned only with a higher CE weight (5-10) and half or more of the patches centred on it
    (lesion F1 0 without, 0.67-0.73 with).

    Parameters
    ----------
    fingerprint : Fingerprint
    label_values : tuple of int
        The network's classes in output order (background first, ignore excluded).

    Returns
    -------
    class_weights : tuple of float or None
        ``None`` when no class is rare.
    oversample_labels : tuple of int
        Rare label values that foreground patches are centred on.
    oversample_foreground : float
        Fraction of foreground-centred patches (0.33, nnU-Net's value, when no class is rare).
    reason : str
    """
    counts = {v: fingerprint.class_voxels.get(v, 0) for v in label_values if v != 0}
    if len(counts) < 2 or max(counts.values()) == 0:
        return (
            None,
            (),
            0.33,
            ("class weights 1 and 33% foreground patches: fewer than two foreground classes"),
        )
    largest = max(counts.values())
    weights = {}
    for value, count in counts.items():
        ratio = count / largest
        if ratio < RARE_CLASS_RATIO:
            weights[value] = min(MAX_CLASS_WEIGHT, float(round(math.sqrt(1 / max(ratio, 1e-6)))))
    if not weights:
        return (
            None,
            (),
            0.33,
            (
                "class weights 1 and 33% foreground patches: every foreground class has at least "
                f"{RARE_CLASS_RATIO:.0%} of the voxels of the largest"
            ),
        )
    rare = tuple(sorted(weights))
    oversample = 0.6 if max(weights.values()) > 5 else 0.5
    described = ", ".join(
        f"label {v} ({counts[v] / largest:.2%} of the largest class, "
        f"{_components(fingerprint, v)}) -> CE weight {weights[v]:g}"
        for v in rare
    )
    reason = (
        f"rare classes: {described}; {oversample:.0%} of the patches are centred on them, so a "
        "CPU budget still sees them (lesion F1 0 without this on a 10-minute CPU run)"
    )
    class_weights = tuple(weights.get(v, 1.0) for v in label_values)
    return class_weights, rare, oversample, reason


def _components(fingerprint: Fingerprint, value: int) -> str:
    stats = fingerprint.components.get(value)
    if stats is None:
        return "no components"
    return (
        f"{stats.mean_count:.1f} components per case, median {stats.median_size_voxels:.0f} voxels"
    )


def _fmt(values: np.ndarray | tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def sparse_regulariser(
    fingerprint: Fingerprint, *, patch_dims: int
) -> tuple[dict[str, float], str | None]:
    """Loss terms for sparse labels (scribbles, clicks, slices) on the unmarked voxels.

    When at least half of the labelled voxels carry the dataset's ignore label, training adds
    ``entropy`` (weight 0.1, :mod:`medseg.train.weak_terms`) to ``training.extra_losses``: the
    network is pushed to a confident answer on the voxels no label covers (docs/weak.md). When
    the dataset declares classes with every object marked (``every_object_marked``), it adds
    ``absence`` (weight 1): unmarked voxels beyond the marks' reach are not of those classes;
    not to planar configurations of 3D data (``patch_dims`` 2), whose slices cannot see the
    marks on their neighbours.

    Returns
    -------
    extra_losses : dict of str to float
        ``{"entropy": 0.1}``, that plus ``{"absence": 1.0}``, or ``{}``.
    reason : str or None
        ``None`` when the dataset has no ignore label.
    """
    ignore = fingerprint.ignore_label
    total = sum(fingerprint.class_voxels.values())
    if ignore is None or total == 0:
        return {}, None
    fraction = fingerprint.class_voxels.get(ignore, 0) / total
    if fraction < SPARSE_IGNORE_FRACTION:
        return {}, (
            f"no entropy term: {fraction:.0%} of the labelled voxels carry the ignore label "
            f"(below {SPARSE_IGNORE_FRACTION:.0%}, the labels are mostly complete)"
        )
    terms = {"entropy": ENTROPY_WEIGHT}
    reason = (
        f"entropy term (weight {ENTROPY_WEIGHT:g}) on the unlabelled voxels: {fraction:.0%} of "
        "the labelled voxels carry the ignore label (sparse labels), so the network is pushed "
        "to a confident answer where no label says which (entropy minimisation; docs/weak.md)"
    )
    marked = fingerprint.every_object_marked
    if marked and patch_dims < fingerprint.ndim:
        reason += (
            "; no absence term here although every object of a class is marked: a slice "
            "cannot see the marks on its neighbours"
        )
    elif marked:
        names = {v: n for n, v in fingerprint.labels.items()}
        listed = ", ".join(f"{names.get(v, v)} within {r:g} mm" for v, r in sorted(marked.items()))
        terms["absence"] = ABSENCE_WEIGHT
        reason += (
            f"; absence term (weight {ABSENCE_WEIGHT:g}): every object of a class is marked "
            f"({listed} of a mark, dataset.json every_object_marked), so unmarked voxels "
            "farther than that from every mark of the class are taught not to be it"
        )
    return terms, reason


def planar_reason(name: str, spacing: tuple[float, ...], plane: int, neighbours: int) -> str:
    """Why a planar configuration slices as it does, and when it is used."""
    text = (
        f"{name}: slices along axis {plane} at in-plane spacing {_fmt(spacing)} mm; axis "
        f"{plane} is not resampled"
    )
    if neighbours:
        text += (
            f"; {neighbours} neighbouring slices on each side are extra input channels "
            f"({2 * neighbours + 1} per image channel, the end slices repeated at the volume "
            "ends), the label is the centre slice's (2.5D)"
        )
    if name in PLANAR_SET:
        text += (
            "; a member of the multiplane ensemble (the 2.5D networks of the three planes, "
            "softmax averaged: --config multiplane); offered, not the default: 3d learns the "
            "full context and the planar set costs three trainings"
        )
    return text
