"""2D PNG, JPEG and TIFF images (Pillow and tifffile).

These formats have no standard for physical geometry, so ``array`` of shape ``(C, Y, X)`` gets
spacing ``(1.0, 1.0)`` mm, origin ``(0.0, 0.0)`` and identity direction, unless medseg wrote the
file: PNG and TIFF files that medseg writes from an image with other geometry carry it as JSON
(``{"spacing": [sy, sx], "origin": [oy, ox], "direction": [[...], [...]]}``, array order, mm) in
a PNG text chunk / the TIFF image description (key :data:`GEOMETRY_KEY`), plus the pixel size in
the formats' own resolution fields (PNG ``pHYs``, TIFF ``XResolution``/``YResolution``) for other
programs, and read it back.

Channels: grey and palette images give ``C = 1`` (palette images keep their indices, so label
maps stay label maps); RGB gives ``C = 3`` in R, G, B order. **Alpha is always dropped**
(RGBA -> RGB, grey+alpha -> grey) and ``meta["alpha_dropped"]`` is set to ``True``.

Writing: PNG takes ``uint8``/``uint16`` single-channel or ``uint8`` RGB images (``bool`` is
stored as ``uint8`` 0/1); TIFF takes any numeric dtype and channel count; JPEG is lossy and is
never written. 3D images are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import ImageReadError, ImageWriteError
from medseg.io.header import check_voxel_count
from medseg.io.image import Image

PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
_ALPHA_EXTRASAMPLES = (1, 2)  # TIFF ExtraSamples: associated and unassociated alpha
GEOMETRY_KEY = "medseg-geometry"
"""PNG text keyword / TIFF shaped-description key of the geometry medseg writes."""


def read_raster(path: Path) -> Image:
    """Read a PNG, JPEG or TIFF file as a 2D image of shape ``(C, Y, X)``.

    Raises
    ------
    ImageReadError
        If the file is not an image of that format, is truncated, or (TIFF) holds a stack of
        pages rather than one 2D image.
    """
    if path.name.lower().endswith(TIFF_SUFFIXES):
        array, alpha_dropped, stored = _read_tiff(path)
    else:
        array, alpha_dropped, stored = _read_pillow(path)
    meta: dict[str, Any] = {"source": str(path)}
    if alpha_dropped:
        meta["alpha_dropped"] = True
    if stored is None:
        return Image.from_array(np.ascontiguousarray(array), meta=meta)
    spacing, origin, direction = _parse_geometry(stored, path)
    return Image(np.ascontiguousarray(array), spacing, origin, direction, meta=meta)


def _geometry_json(image: Image) -> str | None:
    """The geometry of a 2D image as JSON, or ``None`` for the formats' default geometry."""
    default = (
        np.allclose(image.spacing, 1.0)
        and np.allclose(image.origin, 0.0)
        and np.allclose(image.direction, np.eye(2))
    )
    if default:
        return None
    return json.dumps(
        {
            "spacing": list(image.spacing),
            "origin": list(image.origin),
            "direction": np.asarray(image.direction, float).tolist(),
        }
    )


def _parse_geometry(text: str, path: Path) -> tuple[Any, Any, Any]:
    try:
        stored = json.loads(text)
        spacing = tuple(float(v) for v in stored["spacing"])
        origin = tuple(float(v) for v in stored["origin"])
        direction = np.asarray(stored["direction"], dtype=np.float64)
        valid = len(spacing) == len(origin) == 2 and direction.shape == (2, 2)
    except (ValueError, TypeError, KeyError) as err:
        valid, reason = False, str(err)
    else:
        reason = f"spacing {spacing}, origin {origin}, direction shape {direction.shape}"
        valid = valid and all(s > 0 for s in spacing)
    if not valid:
        raise ImageReadError(
            f"{path}: the {GEOMETRY_KEY} entry medseg wrote is corrupt ({reason}); remove it "
            "or rewrite the file"
        )
    return spacing, origin, direction


def _read_pillow(path: Path) -> tuple[npt.NDArray[Any], bool, str | None]:
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as pil:
            check_voxel_count(path, (pil.height, pil.width), len(pil.getbands()))
            pil.load()
            stored = pil.info.get(GEOMETRY_KEY)
            return (*_pil_to_array(pil), stored if isinstance(stored, str) else None)
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as err:
        raise ImageReadError(
            f"{path}: not a readable {path.suffix.lstrip('.').upper()} image ({err})"
        ) from err


def _pil_to_array(pil: Any) -> tuple[npt.NDArray[Any], bool]:
    """(C, Y, X) array of a loaded Pillow image and whether an alpha band was dropped."""
    alpha_dropped = pil.mode in ("LA", "PA", "RGBA", "La", "RGBa")
    if pil.mode in ("LA", "PA", "La"):
        pil = pil.getchannel(0)
    elif pil.mode not in ("1", "L", "P", "I", "F", "RGB") and not pil.mode.startswith("I;16"):
        pil = pil.convert("RGB")
    array = np.asarray(pil)
    if pil.mode == "1":
        array = array.astype(np.uint8)
    elif pil.mode.startswith("I;16"):
        array = array.astype(np.uint16)
    if array.ndim == 2:
        return array[None], alpha_dropped
    return np.moveaxis(array[..., :3], -1, 0), alpha_dropped


def _read_tiff(path: Path) -> tuple[npt.NDArray[Any], bool, str | None]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
            check_voxel_count(path, shape)
            if axes not in ("YX", "YXS", "SYX", "CYX"):
                raise ImageReadError(
                    f"{path}: TIFF holds axes {axes} with shape {shape}; medseg reads TIFF as one "
                    "2D image (YX, RGB or CYX); store volumes and stacks as .nii.gz"
                )
            array = series.asarray()
            extras = tuple(int(e) for e in series.keyframe.extrasamples)
            shaped = tif.shaped_metadata or ({},)
            stored = shaped[0].get(GEOMETRY_KEY)
    except ImageReadError:
        raise
    except Exception as err:  # tifffile raises TiffFileError, ValueError, OSError, ...
        raise ImageReadError(f"{path}: not a readable TIFF image ({err})") from err
    stored = stored if isinstance(stored, str) else None
    if axes == "YX":
        return array[None], False, stored
    if axes == "YXS":
        array = np.moveaxis(array, -1, 0)
    first_extra = array.shape[0] - len(extras)
    keep = [
        c
        for c in range(array.shape[0])
        if c < first_extra or extras[c - first_extra] not in _ALPHA_EXTRASAMPLES
    ]
    return array[keep], len(keep) < array.shape[0], stored


def write_raster(image: Image, path: Path) -> None:
    """Write a 2D image as PNG or TIFF (the suffix decides; see the module docstring).

    Spacing, origin and direction are stored when they differ from the default (see the module
    docstring).

    Raises
    ------
    ImageWriteError
        If the image is 3D or PNG cannot hold its dtype/channel count.
    """
    if image.ndim != 2:
        raise ImageWriteError(
            f"{path}: {path.suffix} holds 2D images, this one has shape {image.array.shape} "
            "(C, Z, Y, X); write .nii.gz, .nrrd or .mha instead"
        )
    array = image.array.astype(np.uint8) if image.array.dtype == np.bool_ else image.array
    geometry = _geometry_json(image)
    if path.name.lower().endswith(TIFF_SUFFIXES):
        _write_tiff(array, path, geometry, image.spacing)
    else:
        _write_png(array, path, geometry, image.spacing)


def _write_png(
    array: npt.NDArray[Any], path: Path, geometry: str | None, spacing: tuple[float, ...]
) -> None:
    from PIL import Image as PILImage
    from PIL.PngImagePlugin import PngInfo

    channels, dtype = array.shape[0], array.dtype
    if channels == 1 and dtype in (np.uint8, np.uint16):
        pil = PILImage.fromarray(np.ascontiguousarray(array[0]))
    elif channels == 3 and dtype == np.uint8:
        pil = PILImage.fromarray(np.ascontiguousarray(np.moveaxis(array, 0, -1)))
    else:
        raise ImageWriteError(
            f"{path}: PNG stores uint8/uint16 single-channel or uint8 RGB images, not "
            f"{channels} channel(s) of {dtype}; write .tif or .nii.gz to keep the values"
        )
    options: dict[str, Any] = {}
    if geometry is not None:
        options["pnginfo"] = PngInfo()
        options["pnginfo"].add_text(GEOMETRY_KEY, geometry)
        options["dpi"] = (25.4 / spacing[1], 25.4 / spacing[0])  # pHYs: pixels per inch (x, y)
    try:
        pil.save(path, format="PNG", **options)
    except OSError as err:
        raise ImageWriteError(f"{path}: cannot write PNG ({err})") from err


def _write_tiff(
    array: npt.NDArray[Any], path: Path, geometry: str | None, spacing: tuple[float, ...]
) -> None:
    import tifffile

    metadata: dict[str, Any] = {}
    if array.shape[0] == 1:
        data, options = array[0], {"photometric": "minisblack"}
    elif array.shape[0] == 3 and array.dtype in (np.uint8, np.uint16):
        data, options = np.moveaxis(array, 0, -1), {"photometric": "rgb"}
    else:
        data = array
        options = {"photometric": "minisblack", "planarconfig": "separate"}
        metadata["axes"] = "CYX"
    if geometry is not None:
        metadata[GEOMETRY_KEY] = geometry
        options["resolution"] = (10.0 / spacing[1], 10.0 / spacing[0])  # pixels per cm (x, y)
        options["resolutionunit"] = "CENTIMETER"
    if metadata:
        options["metadata"] = metadata
    try:
        tifffile.imwrite(path, np.ascontiguousarray(data), compression="zlib", **options)
    except (OSError, ValueError) as err:
        raise ImageWriteError(f"{path}: cannot write TIFF ({err})") from err
