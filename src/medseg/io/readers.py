"""Format dispatch for :func:`read_image` and :func:`write_image`."""

from __future__ import annotations

import os
from pathlib import Path
from uuid import uuid4

from medseg._typing import PathLikeStr
from medseg.errors import ImageReadError
from medseg.io.image import Image
from medseg.io.itk import read_itk, write_itk


def read_image(path: PathLikeStr) -> Image:
    """Read an image file into a channel-first :class:`Image` with its geometry."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    return read_itk(path)


def write_image(image: Image, path: PathLikeStr) -> None:
    """Write ``image`` atomically: to a temporary file beside ``path``, then renamed."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{uuid4().hex}-{path.name}")
    try:
        write_itk(image, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
