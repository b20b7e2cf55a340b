"""DICOM Segmentation objects (DICOM-SEG): read as label maps, write from label maps (highdicom).

Reading (:func:`read_dicom_seg`, also used by :func:`medseg.io.read_image` for any file whose SOP
class is Segmentation Storage): the segments are combined into one label map whose values are the
*segment numbers* (0 is background); the geometry comes from the SEG's own plane positions and
orientation, slices ordered along the normal (row cosine x column cosine) as for a series.
Overlapping segments cannot form one label map: they are refused, or on request the highest
segment number is kept where segments overlap.

Writing (:func:`write_dicom_seg`): a BINARY Segmentation Storage object that references every
instance of the source series, one segment per label value, coded in SNOMED CT from its name
(:mod:`medseg.io.dicom_codes`). DICOM requires segment numbers 1, 2,
..., N, so the label values must be exactly those.

A SEG may store only the slices that hold a segment (highdicom's default, and that of many
viewers), so its label map covers a slab of the source series;
:func:`medseg.io.image.place_on_grid` pads it back onto the full image grid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medseg._atomic import atomic_path
from medseg._typing import PathLikeStr
from medseg.errors import ImageReadError, ImageWriteError
from medseg.io.dicom_codes import segment_codes
from medseg.io.image import Image

logger = logging.getLogger(__name__)

Overlaps = Literal["refuse", "highest"]

SEGMENTATION_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
)

_TYPE2_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def read_dicom_seg(path: PathLikeStr, *, overlaps: Overlaps = "refuse") -> Image:
    """Read a DICOM Segmentation file as a label map.

    Parameters
    ----------
    path : path
        The SEG file.
    overlaps : {"refuse", "highest"}
        What to do where segments overlap (e.g. a tumour segment inside its organ's segment):
        refuse the file, or keep the highest segment number there (a warning is logged and
        ``meta["segments_overlap"]`` is True).

    Returns
    -------
    Image
        ``array`` of shape ``(1, Z, Y, X)``, integer, values = segment numbers (0 background);
        spacing, origin (mm, LPS) and direction in array order, from the SEG's plane positions.
        ``meta["segment_labels"]`` maps each segment number to its label.

    Raises
    ------
    ImageReadError
        If the file is not a DICOM Segmentation, its segments overlap (with ``"refuse"``), or
        its frames do not form one evenly spaced volume.
    """
    from medseg.io.dicom_pixels import logged_warnings, open_dicom

    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    with logged_warnings(str(path)):
        return labels_from_dataset(open_dicom(path), path, overlaps=overlaps)


def is_dicom_seg(path: PathLikeStr) -> bool:
    """True if ``path`` is a DICOM file whose SOP class is a Segmentation (header only read)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return False
    return str(ds.get("SOPClassUID", "")) in SEGMENTATION_SOP_CLASSES


def labels_from_dataset(ds: Any, path: Path, *, overlaps: Overlaps = "refuse") -> Image:
    """The label map of a parsed Segmentation dataset (see :func:`read_dicom_seg`)."""
    from medseg.io.dicom_pixels import open_dicom

    hd = _highdicom(path, ImageReadError)

    if str(ds.get("SOPClassUID", "")) not in SEGMENTATION_SOP_CLASSES:
        raise ImageReadError(
            f"{path}: not a DICOM Segmentation (SOP class {ds.get('SOPClassUID')})"
        )
    overlapping = False
    try:
        seg = hd.seg.Segmentation.from_dataset(_as_little_endian(ds, path), copy=False)
        try:
            volume = seg.get_volume(combine_segments=True, relabel=False)
        except RuntimeError as err:
            if overlaps != "highest" or "overlap" not in str(err):
                raise
            logger.warning("%s: segments overlap; the highest segment number is kept", path)
            overlapping = True
            # a fresh object: the failed check leaves highdicom's frame index (SQLite) locked
            seg = hd.seg.Segmentation.from_dataset(_as_little_endian(open_dicom(path), path))
            volume = seg.get_volume(combine_segments=True, relabel=False, skip_overlap_checks=True)
    except Exception as err:  # highdicom raises ValueError/RuntimeError for unusable layouts
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ImageReadError(
            f"{path}: DICOM Segmentation cannot be read as one label map ({detail})"
        ) from err
    affine = np.asarray(volume.affine, dtype=np.float64)  # (slice, row, column) -> LPS (x, y, z)
    array = np.asarray(volume.array)
    normal = np.cross(affine[:3, 2], affine[:3, 1])  # row cosine x column cosine
    if float(affine[:3, 0] @ normal) < 0:  # slices run along the normal, as for series
        array = array[::-1]
        affine[:3, 3] += affine[:3, 0] * (array.shape[0] - 1)
        affine[:3, 0] *= -1
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = (affine[:3, :3] / spacing)[::-1, :]
    numbers = [int(n) for n in seg.get_segment_numbers()]
    dtype = np.uint8 if max(numbers, default=0) < 256 else np.uint16
    return Image(
        array=np.ascontiguousarray(array.astype(dtype))[None],
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(v) for v in affine[:3, 3][::-1]),
        direction=direction,
        meta={
            "source": str(path),
            "format": "dicom",
            "dicom_sop_class": "Segmentation Storage",
            "modality": "SEG",
            "series_uid": str(ds.get("SeriesInstanceUID", "")),
            "segment_labels": {
                n: str(seg.get_segment_description(n).segment_label) for n in numbers
            },
            **({"segments_overlap": True} if overlapping else {}),
        },
    )


def _highdicom(path: Path, error: type[Exception]) -> Any:
    """The highdicom module, or ``error`` naming the file and the package to install."""
    try:
        import highdicom
    except ImportError as err:
        raise error(f"{path}: DICOM Segmentation needs highdicom; pip install highdicom") from err
    return highdicom


def _as_little_endian(ds: Any, path: Path) -> Any:
    """Relabel a big-endian SEG of 1- or 8-bit pixels as little endian (highdicom needs that).

    Every other element is already decoded into Python values, and 1- and 8-bit pixel bytes do
    not depend on byte order, so only the recorded encoding changes.
    """
    from pydicom.uid import ExplicitVRLittleEndian

    if ds.original_encoding[1] is not False:
        return ds
    if int(ds.get("BitsAllocated", 1)) > 8:
        raise ImageReadError(
            f"{path}: big-endian DICOM Segmentation with {ds.BitsAllocated}-bit pixels is not "
            "supported; convert it to little endian (e.g. dcmconv +te)"
        )
    _ = ds.PixelData  # load a deferred value while the file's own encoding still applies
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_original_encoding(False, True)
    return ds


def write_dicom_seg(
    labels: Image,
    source: Path | Sequence[Path],
    segment_names: Mapping[int, str],
    path: Path,
    *,
    algorithm_name: str = "medseg",
    series_description: str = "medseg segmentation",
    omit_empty_frames: bool = False,
) -> Path:
    """Write a label map as a DICOM Segmentation referencing its source series.

    Parameters
    ----------
    labels : Image
        Label map of shape ``(1, Z, Y, X)`` on the source series' voxel grid (as
        :func:`medseg.io.read_image` returns it for the series folder); values 0 (background)
        and segment numbers.
    source : Path or sequence of Path
        The source series: its folder, or its files.
    segment_names : mapping of int to str
        Name of each segment, keyed by label value; the keys must be exactly 1, 2, ..., N and
        every non-zero label value must be a key. The name is the segment label (64 characters
        kept) and chooses its SNOMED CT codes (:func:`~medseg.io.dicom_codes.segment_codes`).
    path : Path
        Output file (conventionally ``.dcm``); written atomically.
    algorithm_name : str, optional
        Recorded as the segmentation algorithm (with medseg's version).
    series_description : str, optional
        ``SeriesDescription`` of the new SEG series.
    omit_empty_frames : bool, optional
        Leave out frames without any voxel of a segment: a smaller file, but readers then see
        only the slices that hold labels. By default every slice is stored, so reading the SEG
        gives back the full grid of the source series.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ImageWriteError
        If the source is not one DICOM series, the label map's grid differs from it, or the
        label values and names are not segment numbers 1..N.
    """
    import pydicom
    from pydicom.sr.codedict import codes

    hd = _highdicom(path, ImageWriteError)

    import medseg

    path = Path(path)
    datasets = _source_datasets(source, path)
    grid = _check_grid(labels, datasets, path)
    label_map = np.asarray(labels.array[0])
    numbers = sorted(int(k) for k in segment_names)
    if numbers != list(range(1, len(numbers) + 1)):
        raise ImageWriteError(
            f"{path}: segment numbers must be 1..N in DICOM, got {numbers}; relabel the map"
        )
    present = {int(v) for v in np.unique(label_map)} - {0}
    if unnamed := sorted(present - set(numbers)):
        raise ImageWriteError(f"{path}: label values {unnamed} have no name in segment_names")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        version=medseg.__version__,
        family=codes.cid7162.ArtificialIntelligence,
    )
    codes_of = {number: segment_codes(str(segment_names[number])) for number in numbers}
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=str(segment_names[number])[:64],
            segmented_property_category=codes_of[number][0],
            segmented_property_type=codes_of[number][1],
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for number in numbers
    ]
    dtype = np.uint8 if len(numbers) < 256 else np.uint16
    try:
        seg = hd.seg.Segmentation(
            source_images=[datasets[i] for i in grid],
            pixel_array=label_map.astype(dtype),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=int(datasets[0].get("SeriesNumber", 0) or 0) + 1000,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="medseg",
            manufacturer_model_name=algorithm_name,
            software_versions=medseg.__version__,
            device_serial_number="none",
            series_description=series_description[:64],
            omit_empty_frames=omit_empty_frames,
        )
    except Exception as err:  # highdicom validates many attributes and raises ValueError/TypeError
        raise ImageWriteError(f"{path}: cannot build the DICOM Segmentation ({err})") from err
    if not path.parent.is_dir():
        raise ImageWriteError(f"{path}: output folder {path.parent} does not exist; create it")
    try:
        with atomic_path(path) as tmp:
            pydicom.dcmwrite(tmp, seg, enforce_file_format=True)
    except OSError as err:
        raise ImageWriteError(f"{path}: cannot write DICOM Segmentation ({err.strerror})") from err
    return path


def _source_datasets(source: Path | Sequence[Path], target: Path) -> list[Any]:
    """Headers of the source series' files (pixels not read)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if isinstance(source, str | Path):
        folder = Path(source)
        if not folder.is_dir():
            raise ImageWriteError(f"{target}: source series folder {folder} does not exist")
        files = sorted(p for p in folder.iterdir() if p.is_file())
    else:
        files = [Path(p) for p in source]
    datasets = []
    for file in files:
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue  # files that are not DICOM may sit beside a series, as when reading it
        if "ImagePositionPatient" in ds and "Rows" in ds:
            for keyword in _TYPE2_PATIENT_STUDY:  # may be empty, must be present (highdicom)
                if keyword not in ds:
                    setattr(ds, keyword, "")
            datasets.append(ds)
    series = {str(ds.SeriesInstanceUID) for ds in datasets}
    if len(series) != 1:
        raise ImageWriteError(
            f"{target}: the source must be exactly one DICOM image series, found {len(series)}"
        )
    return datasets


def _check_grid(labels: Image, datasets: list[Any], target: Path) -> list[int]:
    """Indices of ``datasets`` in array z order; checks that ``labels`` lies on their grid."""
    if labels.ndim != 3 or labels.num_channels != 1:
        raise ImageWriteError(
            f"{target}: a label map of shape (1, Z, Y, X) is needed, got {labels.array.shape}"
        )
    if labels.array.dtype.kind not in "biu":
        raise ImageWriteError(f"{target}: label map must be integer, got {labels.array.dtype}")
    first = datasets[0]
    cosines = np.asarray([float(v) for v in first.ImageOrientationPatient])
    normal = np.cross(cosines[:3], cosines[3:])
    along = [float(np.asarray(ds.ImagePositionPatient, float) @ normal) for ds in datasets]
    order = [int(i) for i in np.argsort(along, kind="stable")]
    shape = (len(datasets), int(first.Rows), int(first.Columns))
    if labels.spatial_shape != shape:
        raise ImageWriteError(
            f"{target}: label map shape {labels.spatial_shape} differs from the source series "
            f"{shape} (slices, rows, columns); resample the labels onto the series grid"
        )
    origin = np.asarray(datasets[order[0]].ImagePositionPatient, float)[::-1]
    if not np.allclose(labels.origin, origin, atol=1e-3):
        raise ImageWriteError(
            f"{target}: label map origin {labels.origin} differs from the source series' first "
            f"slice {tuple(origin)} (z, y, x mm); the labels belong to another image"
        )
    return order
