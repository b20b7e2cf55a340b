"""Image input/output that keeps geometry: see :class:`medseg.io.image.Image` for axis order."""

from medseg.io.image import Image, geometry_differences
from medseg.io.readers import read_image, write_image

__all__ = ["Image", "geometry_differences", "read_image", "write_image"]
