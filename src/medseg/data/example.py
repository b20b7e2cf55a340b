"""Built-in example datasets made from real anatomy: the MNI ICBM152 2009 template in nilearn.

nilearn ships the skull-stripped ICBM152 2009c symmetric T1 template and its grey- and
white-matter probability maps at 1 mm (``nilearn/datasets/data/mni_icbm152_*_09a_converted``);
nothing is downloaded. nilearn's own ``load_mni152_template(resolution)`` only rescales the T1
to [0, 1] and resamples it; here the same files are resampled to the requested spacing with a
Gaussian anti-aliasing filter, the brain is masked with the grey+white matter maps (holes such
as the ventricles filled), and each case is randomised:

1. tissue labels by arg-max of background / grey matter / white matter probabilities (once,
   at the target spacing);
2. smooth random deformation plus a global scaling, the same warp for the image (linear) and
   the labels (nearest neighbour);
3. 0-15 synthetic white-matter lesions (occasionally 0 or 1), darker than white matter as MS
   lesions are on T1;
4. bias field, gamma contrast change and Rician noise; intensities stored as int16.

Labels: 0 background (including CSF), 1 grey matter, 2 white matter, 3 white-matter lesion.
Credit: ICBM 2009c template, Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging
Centre, Montreal Neurological Institute, McGill University (Fonov et al., NeuroImage 2011).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from medseg._typing import PathLikeStr, SpacingMM
from medseg.data import synth
from medseg.data.dataset import LabelSpec
from medseg.data.nnunet import write_dataset_json
from medseg.errors import DatasetError
from medseg.io import Image, read_image, write_image

TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
BRAIN_LABELS = LabelSpec(labels={"background": 0, "grey_matter": 1, "white_matter": 2, "lesion": 3})
CREDIT = (
    "Derived from the MNI ICBM152 2009c nonlinear symmetric template shipped with nilearn; "
    "lesions are synthetic. Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging "
    "Centre, Montreal Neurological Institute, McGill University. Permission to use, copy, "
    "modify, and distribute this software and its documentation for any purpose and without fee "
    "is hereby granted, provided that the above copyright notice appear in all copies. The "
    "authors and McGill University make no representations about the suitability of this "
    "software for any purpose. It is provided 'as is' without express or implied warranty. The "
    "authors are not responsible for any data loss, equipment damage, property loss, or injury "
    "to subjects or patients resulting from the use or misuse of this software package. Cite "
    "Fonov et al., NeuroImage 47 (2009) S102 and Fonov et al., NeuroImage 54 (2011) 313-327."
)
ProgressCallback = Callable[[int, int], None]


TISSUE_CSF = 3
"""Value of :attr:`BrainTemplate.tissue` for brain voxels that are neither grey nor white matter."""


@dataclass(frozen=True)
class BrainTemplate:
    """The template at one spacing. Arrays have shape (Z, Y, X) and are read-only.

    ``t1`` is float32 scaled to [0, 1]. ``tissue`` is uint8: 0 outside the brain, 1 grey
    matter, 2 white matter (arg-max of the probability maps), ``TISSUE_CSF`` (3) for the rest
    of the brain mask (ventricles, sulci). Geometry in array order.
    """

    t1: npt.NDArray[np.float32]
    tissue: npt.NDArray[np.uint8]
    spacing: SpacingMM
    origin: tuple[float, ...]
    direction: npt.NDArray[np.float64]


@dataclass(frozen=True)
class BrainCase:
    """One synthetic case. ``image`` int16, ``labels`` uint8, ``white_matter`` bool (before the
    lesions were painted); all spatial arrays of one shape, (Z, Y, X) or (Y, X)."""

    image: npt.NDArray[np.int16]
    labels: npt.NDArray[np.uint8]
    white_matter: npt.NDArray[np.bool_]
    num_lesions: int


def template_dir() -> Path:
    """Folder of the ICBM152 files inside the installed nilearn package (no download)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise DatasetError("the brain example needs nilearn (pip install nilearn)")
    folder = Path(spec.origin).parent / "datasets" / "data"
    missing = [name for name in TEMPLATE_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise DatasetError(f"{folder}: nilearn lacks {', '.join(missing)}; install nilearn>=0.10")
    return folder


@lru_cache(maxsize=2)
def load_brain_template(spacing_mm: float) -> BrainTemplate:
    """Read the 1 mm template and resample it to an isotropic ``spacing_mm`` (cached).

    The new grid is centred on the old one; its shape is ``ceil(extent / spacing_mm)`` per axis
    (2 mm gives (95, 117, 99) in (z, y, x)).
    """
    if not spacing_mm >= 0.5:
        raise DatasetError(
            f"spacing must be at least 0.5 mm (the template has 1 mm voxels), got {spacing_mm} mm"
        )
    folder = template_dir()
    images = {key: read_image(folder / name) for key, name in TEMPLATE_FILES.items()}
    ref = images["t1"]
    old_spacing = np.asarray(ref.spacing)
    old_shape = np.asarray(ref.spatial_shape)
    new_shape = np.ceil(old_shape * old_spacing / spacing_mm).astype(int)
    factor = spacing_mm / old_spacing
    centre_old, centre_new = (old_shape - 1) / 2, (new_shape - 1) / 2
    axes = [
        centre_old[a] + (np.arange(n) - centre_new[a]) * factor[a] for a, n in enumerate(new_shape)
    ]
    coords = np.stack(np.meshgrid(*axes, indexing="ij"))
    arrays = {}
    for key, image in images.items():
        array = image.array[0].astype(np.float32)
        array /= max(float(array.max()), 1e-6)
        array = ndimage.gaussian_filter(array, sigma=np.maximum(0.0, (factor - 1) / 2))
        arrays[key] = ndimage.map_coordinates(array, coords, order=1, mode="constant").astype(
            np.float32
        )
    gm, wm, t1 = arrays["gm"], arrays["wm"], arrays["t1"]
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(gm + wm > 0.25, iterations=2))
    brain &= t1 > 0.02
    background = np.clip(1.0 - gm - wm, 0.0, 1.0)
    tissue = np.argmax(np.stack([background, gm, wm]), axis=0).astype(np.uint8)
    tissue[brain & (tissue == 0)] = TISSUE_CSF
    tissue[~brain] = 0
    for array in (t1, tissue):
        array.flags.writeable = False
    origin = np.asarray(ref.origin) + ref.direction @ (
        old_spacing * centre_old - spacing_mm * centre_new
    )
    return BrainTemplate(
        t1=t1,
        tissue=tissue,
        spacing=(float(spacing_mm),) * 3,
        origin=tuple(float(o) for o in origin),
        direction=ref.direction.copy(),
    )


def synthesize_brain_case(
    t1: npt.NDArray[np.float32],
    tissue: npt.NDArray[np.uint8],
    spacing: SpacingMM,
    rng: np.random.Generator,
    *,
    lesion_counts: tuple[int, int] = (2, 15),
) -> BrainCase:
    """Randomise one case from template arrays (3D, or 2D slices of them).

    The image is warped linearly and the tissue map by nearest neighbour, with one
    displacement field, so labels follow the anatomy exactly.

    Parameters
    ----------
    t1 : ndarray of float32, shape (Z, Y, X) or (Y, X)
        :attr:`BrainTemplate.t1` (or a slice of it).
    tissue : ndarray of uint8, same shape
        :attr:`BrainTemplate.tissue` (or a slice of it).
    spacing : tuple of float
        Voxel size in mm, array order.
    rng : numpy.random.Generator
        Source of randomness; the same generator state gives the same case.
    lesion_counts : (int, int)
        Range of the number of lesions painted (inclusive); 15 % of cases get 0 or 1 instead.
    """
    shape = t1.shape
    displacement = synth.random_smooth_deformation(shape, rng, magnitude_mm=2.5, spacing=spacing)
    scale = rng.uniform(0.92, 1.08)
    for axis, (n, s) in enumerate(zip(shape, spacing, strict=True)):
        position = (np.arange(n, dtype=np.float32) - (n - 1) / 2) * s
        view = [1] * len(shape)
        view[axis] = n
        displacement[axis] += ((1 / scale - 1) * position).reshape(view)
    t1 = synth.apply_deformation(t1, displacement, spacing)
    labels = synth.apply_deformation(tissue, displacement, spacing, order=0)
    inside = labels > 0
    labels[labels == TISSUE_CSF] = 0
    white_matter = labels == 2
    few = rng.random() < 0.15
    lesions = synth.synthesize_lesions(
        white_matter,
        rng,
        count_range=(0, 1) if few else tuple(lesion_counts),
        radius_range_mm=(1.5, 6.0),
        spacing=spacing,
    )
    labels[lesions > 0] = 3
    image = synth.apply_lesion_intensity(t1, lesions, rng, contrast_range=(0.45, 0.85))
    image = image * synth.bias_field(shape, rng, strength=0.15)
    image = synth.random_gamma(image, rng, gamma_range=(0.8, 1.25))
    image = synth.add_noise(image, rng, sigma=rng.uniform(0.01, 0.03))
    image[~inside] = 0
    scaled = np.rint(image * rng.uniform(600.0, 1200.0))
    return BrainCase(
        image=np.clip(scaled, 0, np.iinfo(np.int16).max).astype(np.int16),
        labels=labels,
        white_matter=white_matter,
        num_lesions=int(lesions.max(initial=0)),
    )


def make_brain_example(
    out: PathLikeStr,
    *,
    cases: int = 20,
    seed: int = 0,
    spacing_mm: float = 2.0,
    test_cases: int = 0,
    lesion_counts: tuple[int, int] = (2, 15),
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Write a 3D nnU-Net-format dataset of synthetic T1 brains with lesions.

    Parameters
    ----------
    out : path
        Dataset folder to create (e.g. ``Dataset001_BrainExample``); must be empty or absent.
    cases : int
        Training cases, written to ``imagesTr/`` and ``labelsTr/``.
    seed : int
        Case ``i`` is generated from ``(seed, i)``: the same seed gives identical files.
    spacing_mm : float
        Isotropic voxel size; 2 mm gives (95, 117, 99) voxels (z, y, x).
    test_cases : int
        Extra cases in ``imagesTs/``, with their labels in ``labelsTs/`` for evaluation.
    lesion_counts : (int, int)
        Range of lesions per case (inclusive); 15 % of cases get 0 or 1 instead. The default
        is the demo's; benchmarks use others so that nothing is tuned to the demo's data.
    on_progress : callable, optional
        ``on_progress(done, total)`` after each case.

    Returns
    -------
    Path
        ``out``.
    """
    out = _prepare(out, cases, test_cases, seed)
    template = load_brain_template(float(spacing_mm))
    fields = (template.t1, template.tissue)

    def write_case(index: int, case_id: str, images: Path, labels: Path) -> None:
        rng = _case_rng(seed, index)
        case = synthesize_brain_case(*fields, template.spacing, rng, lesion_counts=lesion_counts)
        for array, path in (
            (case.image, images / f"{case_id}_0000.nii.gz"),
            (case.labels, labels / f"{case_id}.nii.gz"),
        ):
            write_image(
                Image(array[None], template.spacing, template.origin, template.direction), path
            )

    _write_all(out, cases, test_cases, "BrainExample", write_case, on_progress)
    _write_json(out, cases, "3D T1 brains from the MNI ICBM152 2009c template", spacing_mm, seed)
    return out


def make_brain2d_example(
    out: PathLikeStr,
    *,
    cases: int = 20,
    seed: int = 0,
    spacing_mm: float = 1.0,
    test_cases: int = 0,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Write a 2D nnU-Net-format dataset of axial slices, as 2D NIfTI (``.nii.gz``).

    Each case is one axial slice, picked at random from the middle of the brain (through the
    ventricles and deep white matter), randomised as in :func:`make_brain_example` but in 2D.
    2D NIfTI keeps the spacing in mm and the int16 intensities, which PNG would not. Parameters
    are as in :func:`make_brain_example`; ``spacing_mm`` defaults to 1 mm (about 233 x 197).
    """
    out = _prepare(out, cases, test_cases, seed)
    template = load_brain_template(float(spacing_mm))
    in_brain = np.flatnonzero(template.tissue.any(axis=(1, 2)))
    low, high = in_brain[0], in_brain[-1]
    spacing, direction = template.spacing[1:], template.direction[1:, 1:]

    def write_case(index: int, case_id: str, images: Path, labels: Path) -> None:
        rng = _case_rng(seed, index)
        z = int(rng.integers(low + 0.4 * (high - low), low + 0.7 * (high - low) + 1))
        fields = (template.t1[z], template.tissue[z])
        case = synthesize_brain_case(*fields, spacing, rng)
        origin_3d = np.asarray(template.origin) + template.direction[:, 0] * z * template.spacing[0]
        for array, path in (
            (case.image, images / f"{case_id}_0000.nii.gz"),
            (case.labels, labels / f"{case_id}.nii.gz"),
        ):
            write_image(Image(array[None], spacing, tuple(origin_3d[1:]), direction), path)

    _write_all(out, cases, test_cases, "Brain2DExample", write_case, on_progress)
    _write_json(
        out, cases, "2D axial T1 slices from the MNI ICBM152 2009c template", spacing_mm, seed
    )
    return out


def _case_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _prepare(out: PathLikeStr, cases: int, test_cases: int, seed: int) -> Path:
    out = Path(out)
    if cases < 1 or test_cases < 0:
        raise DatasetError(
            f"need at least 1 training case and >= 0 test cases, got {cases}, {test_cases}"
        )
    if seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out}: already exists and is not an empty folder; choose a new one")
    return out


def _write_all(
    out: Path,
    cases: int,
    test_cases: int,
    prefix: str,
    write_case: Callable[[int, str, Path, Path], None],
    on_progress: ProgressCallback | None,
) -> None:
    total = cases + test_cases
    width = max(3, math.ceil(math.log10(total + 1)))
    folders = {split: (out / f"images{split}", out / f"labels{split}") for split in ("Tr", "Ts")}
    for index in range(total):
        images, labels = folders["Tr" if index < cases else "Ts"]
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        write_case(index, f"{prefix}_{index:0{width}d}", images, labels)
        if on_progress is not None:
            on_progress(index + 1, total)


def _write_json(out: Path, cases: int, description: str, spacing_mm: float, seed: int) -> None:
    write_dataset_json(
        out,
        channel_names={0: "T1"},
        labels=BRAIN_LABELS,
        num_training=cases,
        file_ending=".nii.gz",
        name=out.name,
        extra={
            "description": f"{description}, {spacing_mm:g} mm, seed {seed} (medseg example)",
            "licence": CREDIT,
            "reference": "https://nist.mni.mcgill.ca/icbm-152-nonlinear-atlases-2009/",
        },
    )
