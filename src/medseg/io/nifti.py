"""NIfTI voxels through nibabel; the geometry is taken from SimpleITK's header reader.

ITK's NIfTI reader (up to ITK 5) silently replaces NaN and inf with 0 (ITK pull request #6683),
which would hide exactly the voxels a dataset check must report. medseg therefore takes the
voxels from nibabel (``scl_slope``/``scl_inter`` applied) and spacing, origin and direction
from ITK, so the geometry convention (LPS, ITK's qform/sform choice) stays ITK's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg.errors import ImageReadError


def read_nifti_array(path: Path, reader: Any) -> npt.NDArray[Any]:
    """Voxels of a NIfTI file whose header ``reader`` (``SimpleITK.ImageFileReader``) checked.

    Returns
    -------
    ndarray, shape (C, Z, Y, X) or (C, Y, X)
        One channel per pixel component (vector intent, RGB); dtype as stored, or float after
        ``scl_slope``/``scl_inter`` scaling.
    """
    import nibabel as nib

    size_xyz = tuple(int(s) for s in reader.GetSize())
    channels = int(reader.GetNumberOfComponents())
    try:
        data = np.asanyarray(nib.load(path, mmap=False).dataobj)
    except Exception as err:  # nibabel and gzip raise many types for corrupt data
        raise ImageReadError(f"{path}: cannot read NIfTI voxels ({err})") from err
    if data.dtype.fields:  # RGB24 / RGBA32 as a structured dtype
        data = np.stack([data[name] for name in data.dtype.names], axis=-1)
    if [s for s in data.shape if s != 1] != [s for s in (*size_xyz, channels) if s != 1]:
        raise ImageReadError(
            f"{path}: voxel array shape {data.shape} does not match header size {size_xyz} "
            f"with {channels} component(s); unsupported NIfTI layout"
        )
    # nibabel indexes (x, y, z[, t], c); dropping singleton axes leaves (x, y, z, c).
    data = data.reshape(*size_xyz, channels)
    ndim = len(size_xyz)
    return np.ascontiguousarray(np.moveaxis(data, -1, 0).transpose(0, *range(ndim, 0, -1)))
