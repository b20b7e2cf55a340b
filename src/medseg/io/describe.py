"""A short description of an image file: what ``medseg info`` prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medseg._typing import PathLikeStr
from medseg.io.image import Image
from medseg.io.readers import read_image

if TYPE_CHECKING:
    from rich.table import Table


@dataclass(frozen=True)
class ImageDescription:
    """Shape, geometry and intensity summary of one image (spatial tuples in array order)."""

    path: str
    shape: tuple[int, ...]
    channels: int
    dtype: str
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    orientation: str
    minimum: float
    maximum: float
    nonfinite: int = 0

    def table(self) -> Table:
        """A Rich table, one property a row."""
        from rich.table import Table

        table = Table(title=self.path, show_header=False)
        rows = {
            "shape (z, y, x)" if len(self.shape) == 3 else "shape (y, x)": str(self.shape),
            "channels": str(self.channels),
            "dtype": self.dtype,
            "spacing (mm)": ", ".join(f"{s:.4g}" for s in self.spacing),
            "origin (mm)": ", ".join(f"{o:.4g}" for o in self.origin),
            "orientation": self.orientation,
            "intensity range": f"{self.minimum:.6g} .. {self.maximum:.6g}",
            "NaN/inf voxels": str(self.nonfinite),
        }
        for key, value in rows.items():
            table.add_row(key, value)
        return table


def describe_image(path: PathLikeStr, *, series_uid: str | None = None) -> ImageDescription:
    """Read ``path`` (a file or DICOM folder, see :func:`read_image`) and summarise it.

    The intensity range covers finite voxels only (NaN and inf are skipped); it is NaN if no
    voxel is finite.
    """
    image = read_image(path, series_uid=series_uid)
    finite = image.array[np.isfinite(image.array)]
    return ImageDescription(
        path=str(path),
        shape=image.spatial_shape,
        channels=image.num_channels,
        dtype=str(image.array.dtype),
        spacing=image.spacing,
        origin=image.origin,
        orientation=orientation_code(image),
        minimum=float(finite.min()) if finite.size else float("nan"),
        maximum=float(finite.max()) if finite.size else float("nan"),
        nonfinite=int(image.array.size - finite.size),
    )


def orientation_code(image: Image) -> str:
    """Three-letter DICOM/LPS orientation code, e.g. ``"LPS"`` (x, y, z axes); 2D gives ``"2D"``.

    Each letter names the patient direction towards which the x, y and z index increases, using
    ITK's LPS convention.
    """
    if image.ndim != 3:
        return "2D"
    direction_xyz = image.direction[::-1, ::-1]
    letters = (("L", "R"), ("P", "A"), ("S", "I"))
    code = ""
    for axis in range(3):
        column = direction_xyz[:, axis]
        dominant = int(np.argmax(np.abs(column)))
        code += letters[dominant][0 if column[dominant] > 0 else 1]
    return code
