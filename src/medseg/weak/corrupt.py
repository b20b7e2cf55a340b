"""Controlled label corruption, for benchmarking training from noisy labels.

:func:`corrupt_label` damages one label map in the ways real annotations go wrong, each drawn
from the generator passed in (the same seed gives the same damage):

1. missing components: each 26-connected component of a foreground class is erased
   (set to background) with probability ``drop_probability``;
2. flipped classes: each remaining component is relabelled to another foreground class with
   probability ``flip_probability`` (needs two or more foreground classes);
3. boundary errors: every foreground class is eroded or dilated (equal odds) by a radius drawn
   from 1..``max_radius`` voxels (a dilation does not overwrite other foreground classes);
4. shift: the whole map is translated by up to ``max_shift`` voxels per axis (integer offsets
   drawn uniformly; voxels shifted in are background).

:func:`corrupt_dataset` corrupts ``round(case_fraction * N)`` training cases chosen by the seed
and leaves the others clean; :func:`simulate_raters` writes several independently corrupted
copies of every case as rater files. Arrays are spatial label maps, shape (Z, Y, X) or (Y, X).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from medseg.data.dataset import Case, Dataset
from medseg.errors import ConfigError
from medseg.io import Image, write_image
from medseg.weak._derive import (
    ProgressCallback,
    case_rng,
    derive_dataset,
    load_labelled,
    read_label,
)


@dataclass(frozen=True, kw_only=True)
class CorruptionConfig:
    """What :func:`corrupt_label` does; 0 turns an operation off."""

    case_fraction: float = 0.3
    drop_probability: float = 0.2
    flip_probability: float = 0.1
    max_radius: int = 2
    max_shift: int = 2

    def __post_init__(self) -> None:
        probabilities = (self.case_fraction, self.drop_probability, self.flip_probability)
        if not all(0 <= p <= 1 for p in probabilities) or min(self.max_radius, self.max_shift) < 0:
            raise ConfigError(
                f"corruption settings need fractions/probabilities in [0, 1] and non-negative "
                f"radius and shift; got {self}"
            )


def corrupt_label(
    label: np.ndarray, rng: np.random.Generator, config: CorruptionConfig = CorruptionConfig()
) -> tuple[np.ndarray, dict[str, Any]]:
    """One corrupted copy of ``label``.

    Parameters
    ----------
    label : ndarray of int, shape (Z, Y, X) or (Y, X)
        Clean label map, background 0.
    rng : numpy.random.Generator
    config : CorruptionConfig

    Returns
    -------
    corrupted : ndarray of int16, same shape
    log : dict
        What was done: ``dropped`` and ``flipped`` component counts, ``radius`` per class
        (negative = erosion), ``shift`` per axis.
    """
    label = np.asarray(label)
    out = label.astype(np.int16, copy=True)
    classes = [int(c) for c in np.unique(label) if c != 0]
    structure = np.ones((3,) * label.ndim, bool)
    dropped = flipped = 0
    for value in classes:
        components, count = ndimage.label(label == value, structure)
        for index in range(1, count + 1):
            draw = rng.random()
            if draw < config.drop_probability:
                out[components == index] = 0
                dropped += 1
            elif draw < config.drop_probability + config.flip_probability and len(classes) > 1:
                others = [c for c in classes if c != value]
                out[components == index] = others[int(rng.integers(len(others)))]
                flipped += 1
    radius: dict[str, int] = {}
    if config.max_radius:
        ball = ndimage.generate_binary_structure(label.ndim, 1)
        for value in classes:
            r = int(rng.integers(1, config.max_radius + 1)) * (1 if rng.random() < 0.5 else -1)
            radius[str(value)] = r
            mask = out == value
            if r > 0:
                grown = ndimage.binary_dilation(mask, ball, r) & (out == 0)
                out[grown] = value
            else:
                out[mask & ~ndimage.binary_erosion(mask, ball, -r)] = 0
    shift = [0] * label.ndim
    if config.max_shift:
        shift = [int(s) for s in rng.integers(-config.max_shift, config.max_shift + 1, label.ndim)]
        out = _translate(out, shift)
    return out, {"dropped": dropped, "flipped": flipped, "radius": radius, "shift": shift}


def corrupt_dataset(
    dataset: Dataset | str | Path,
    out: str | Path,
    *,
    config: CorruptionConfig = CorruptionConfig(),
    seed: int = 0,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Write a copy of a dataset with ``config.case_fraction`` of its training labels corrupted.

    The corrupted cases are drawn from ``seed``; case ``i`` is corrupted with generator
    ``(seed, i)``. ``dataset.json``'s ``weak_labels`` lists every corrupted case and what was
    done to it, so a benchmark can score detection as well as the final model.
    """
    source = load_labelled(dataset)
    cases = source.labelled
    count = round(config.case_fraction * len(cases))
    chosen = set(np.random.default_rng(seed).permutation(len(cases))[:count].tolist())
    logs: dict[str, Any] = {}

    def derive(index: int, case: Case) -> Image:
        label = read_label(case)
        if index not in chosen:
            return label
        corrupted, logs[case.case_id] = corrupt_label(label.array[0], case_rng(seed, index), config)
        return label.with_array(corrupted[None])

    description = {"kind": "corrupted", "seed": seed, **asdict(config), "cases": logs}
    return derive_dataset(
        source, Path(out), derive, labels=source.labels, description=description,
        on_progress=on_progress,
    )  # fmt: skip


def simulate_raters(
    dataset: Dataset | str | Path,
    out: str | Path,
    *,
    raters: int = 3,
    config: CorruptionConfig = CorruptionConfig(case_fraction=1.0),
    keep_clean: bool = False,
    seed: int = 0,
) -> Path:
    """Write a several-raters dataset: ``raters`` independently corrupted copies of each label.

    Rater ``k`` of case ``i`` is ``corrupt_label`` with generator ``(seed, i, k)`` (every rater
    of every case is corrupted; ``config.case_fraction`` is not used). With ``keep_clean`` the
    clean label stays as ``labelsTr/<case>``, else only the rater files are written (train on
    their consensus, :func:`medseg.weak.raters.consensus_dataset`).
    """
    if raters < 1:
        raise ConfigError(f"raters must be >= 1, got {raters}")
    source = load_labelled(dataset)
    root = Path(out)
    ending = source.file_ending

    def derive(index: int, case: Case) -> Image:
        label = read_label(case)
        for k in range(raters):
            rng = np.random.default_rng(np.random.SeedSequence([seed, index, k]))
            corrupted, _ = corrupt_label(label.array[0], rng, config)
            write_image(
                label.with_array(corrupted[None]),
                root / "labelsTr" / f"{case.case_id}_rater{k}{ending}",
            )
        return label

    description = {"kind": "simulated-raters", "raters": raters, "seed": seed, **asdict(config)}
    derive_dataset(source, root, derive, labels=source.labels, description=description)
    if not keep_clean:
        for case in source.labelled:
            (root / "labelsTr" / f"{case.case_id}{ending}").unlink()
    return root


def _translate(array: np.ndarray, shift: list[int]) -> np.ndarray:
    """``array`` moved by ``shift`` voxels per axis; uncovered voxels are 0."""
    out = np.zeros_like(array)
    src, dst = [], []
    for s, n in zip(shift, array.shape, strict=True):
        src.append(slice(max(-s, 0), n - max(s, 0)))
        dst.append(slice(max(s, 0), n - max(-s, 0)))
    out[tuple(dst)] = array[tuple(src)]
    return out
