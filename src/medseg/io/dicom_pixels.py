"""Parsing DICOM files and decoding their pixels with pydicom, header checks first.

Files are parsed by :func:`open_dicom` (gzipped files decompressed in memory, large values
deferred until used).

One rule for every DICOM image medseg reads (single files and every slice of a series):

1. The header is checked before any pixel is decoded: the declared size (rows x columns x frames x
   samples) must be under :data:`medseg.io.header.MAX_VOXELS`, uncompressed pixel data must hold
   every declared byte, and the transfer syntax's decoder must be installed.
2. pydicom decodes the pixels (``Dataset.pixel_array``): colour images come out as RGB, bit-packed
   1-bit segmentations as 0/1, big-endian data in native byte order, palette images as their
   indices (like palette PNGs, so label maps stay label maps).
3. The modality LUT or ``RescaleSlope``/``RescaleIntercept`` is applied (pydicom's
   ``apply_modality_lut``; enhanced multi-frame files carry the rescale in their functional
   groups; RT dose grids are multiplied by ``DoseGridScaling``, giving dose in ``DoseUnits``).
   Values that stay whole numbers keep an integer type, others become float32.
4. **MONOCHROME1 is never inverted.** Voxels keep the modality-LUT output (what the scanner
   measured); the inversion MONOCHROME1 asks for is a display instruction, left to viewers. The
   photometric interpretation is recorded in ``Image.meta["photometric_interpretation"]``.

Library warnings raised while parsing and decoding are logged at DEBUG level; decoder failures
become one :class:`~medseg.errors.ImageReadError` line naming the file.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import ImageReadError
from medseg.io.header import check_voxel_count

logger = logging.getLogger(__name__)

_MAX_GZIP_BYTES = 2**32
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

_DECODER_PACKAGES = {
    "JPEG": "pylibjpeg pylibjpeg-libjpeg",
    "JPEG-LS": "pyjpegls",
    "JPEG 2000": "pylibjpeg pylibjpeg-openjpeg",
    "HTJ2K": "pylibjpeg pylibjpeg-openjpeg",
    "RLE": "pylibjpeg pylibjpeg-rle",
}


def has_dicom_preamble(path: Path) -> bool:
    """True if ``path`` (or, for ``.gz``, its decompressed start) has ``DICM`` at byte 128."""
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                head = stream.read(132)
        else:
            with path.open("rb") as file:
                head = file.read(132)
    except (OSError, EOFError):
        return False
    return head[128:132] == b"DICM"


def open_dicom(path: Path) -> Any:
    """Parse a DICOM file (``.gz`` decompressed in memory), large values deferred.

    Raises
    ------
    ImageReadError
        If the bytes are not DICOM.
    """
    import pydicom

    source: Any = path
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                source = io.BytesIO(stream.read(_MAX_GZIP_BYTES))
        ds = pydicom.dcmread(source, defer_size="256 KB", force=True)
    except Exception as err:  # pydicom raises many types for bytes that are not DICOM
        raise ImageReadError(f"{path}: not a readable DICOM file ({err})") from err
    if len(ds) == 0 and not getattr(ds, "file_meta", None):
        raise ImageReadError(f"{path}: not a readable DICOM file (no DICOM elements found)")
    return ds


@contextmanager
def logged_warnings(where: str) -> Iterator[None]:
    """Turn the warnings raised inside the block into DEBUG log records naming ``where``.

    pydicom warns about values that break the standard but that it handles (an invalid VR, a
    wrong explicit/implicit VR guess); medseg reads such files and keeps the note in the log.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        logger.debug("%s: %s: %s", where, warning.category.__name__, warning.message)


def check_pixel_header(ds: Any, where: str) -> tuple[int, int, int, int]:
    """Check a dataset's image header before decoding; return (frames, rows, columns, samples).

    Raises
    ------
    ImageReadError
        If the dataset holds no pixel data, declares an absurd size, its uncompressed pixel data
        is shorter than declared, or no installed decoder handles its transfer syntax.
    """
    keyword = next((k for k in PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        sop = _sop_class_name(ds)
        raise ImageReadError(f"{where}: DICOM file holds no pixel data ({sop}); not an image")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as err:
        raise ImageReadError(
            f"{where}: DICOM image header is incomplete or invalid ({err}); cannot size the image"
        ) from err
    check_voxel_count(where, (frames, rows, columns), samples)
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    encapsulated = syntax is not None and syntax.is_compressed
    if keyword == "PixelData" and not encapsulated:
        # YBR_FULL_422 stores two values per pixel (chroma shared by pixel pairs), not three
        per_pixel = 2 if ds.get("PhotometricInterpretation") == "YBR_FULL_422" else samples
        expected = math.ceil(frames * rows * columns * per_pixel * bits / 8)
        stored = _element_length(ds, keyword)
        if stored is not None and stored < expected:
            raise ImageReadError(
                f"{where}: pixel data holds {stored} bytes, the header declares {frames} frame(s) "
                f"of {rows}x{columns}x{samples} at {bits} bits = {expected} bytes; the file is "
                "truncated or its header is wrong"
            )
    if encapsulated:
        _check_decoder(syntax, where)
    return frames, rows, columns, samples


def _element_length(ds: Any, keyword: str) -> int | None:
    """Byte length of an element without loading a deferred value."""
    raw = ds.get_item(keyword)
    length = getattr(raw, "length", None)
    if length is None or length == 0xFFFFFFFF:
        value = getattr(raw, "value", None)
        return len(value) if isinstance(value, bytes | bytearray) else None
    return int(length)


def _check_decoder(syntax: Any, where: str) -> None:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as err:
        raise ImageReadError(
            f"{where}: transfer syntax {syntax.name} ({syntax}) has no pixel decoder in pydicom; "
            "convert the file to an uncompressed transfer syntax (e.g. dcmdjpeg, gdcmconv --raw)"
        ) from err
    if not decoder.is_available:
        family = next(
            (k for k in ("JPEG-LS", "JPEG 2000", "HTJ2K", "RLE") if k in syntax.name), "JPEG"
        )
        raise ImageReadError(
            f"{where}: transfer syntax {syntax.name} needs a decoder that is not installed; "
            f"pip install {_DECODER_PACKAGES[family]}"
        )


def _sop_class_name(ds: Any) -> str:
    uid = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
    if uid is None:
        return "no SOP class"
    return f"SOP class {getattr(uid, 'name', uid)}"


def decode_pixels(ds: Any, where: str) -> npt.NDArray[Any]:
    """Pixels with the modality LUT applied, shape ``(samples, frames, rows, columns)``.

    The header is checked first (:func:`check_pixel_header`); see the module docstring for the
    rules.

    Raises
    ------
    ImageReadError
        If the header check fails or pydicom cannot decode the pixel data (corrupt stream,
        unsupported layout).
    """
    frames, rows, columns, samples = check_pixel_header(ds, where)
    try:
        with logged_warnings(where):
            stored = ds.pixel_array
    except Exception as err:  # decoders raise RuntimeError, ValueError, OSError, ...
        first = str(err).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:300]
        raise ImageReadError(f"{where}: cannot decode DICOM pixel data ({detail})") from err
    stored = stored.astype(stored.dtype.newbyteorder("="), copy=False)
    values = _apply_rescale(stored, ds)
    values = values.reshape(frames, rows, columns, samples)
    return np.ascontiguousarray(np.moveaxis(values, -1, 0))


def _apply_rescale(stored: npt.NDArray[Any], ds: Any) -> npt.NDArray[Any]:
    """Modality LUT / rescale, keeping an integer dtype while values stay whole numbers."""
    from pydicom.pixels import apply_modality_lut

    if ds.get("ModalityLUTSequence"):
        return apply_modality_lut(stored, ds)
    slope, intercept = _rescale_of(ds)
    if "DoseGridScaling" in ds:  # RT Dose: stored x DoseGridScaling = dose in DoseUnits
        slope *= float(ds.DoseGridScaling)
    if slope == 1.0 and intercept == 0.0:
        return stored
    values = stored.astype(np.float64) * slope + intercept
    if stored.dtype.kind in "iu" and slope.is_integer() and intercept.is_integer():
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        for dtype in (stored.dtype, np.int16, np.int32):
            info = np.iinfo(dtype)
            if info.min <= low and high <= info.max:
                return values.astype(dtype)
    return values.astype(np.float32)


def _rescale_of(ds: Any) -> tuple[float, float]:
    """``(RescaleSlope, RescaleIntercept)`` of a dataset, from its functional groups if there.

    Enhanced multi-frame files keep the rescale in the shared functional groups' *Pixel Value
    Transformation Sequence*; files without any rescale get ``(1.0, 0.0)``.
    """
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    groups = ds.get("SharedFunctionalGroupsSequence")
    transform = groups[0].get("PixelValueTransformationSequence") if groups else None
    if not transform:
        return 1.0, 0.0
    item = transform[0]
    return float(item.get("RescaleSlope", 1) or 1), float(item.get("RescaleIntercept", 0) or 0)
