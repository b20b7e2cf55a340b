"""Image input/output that keeps geometry: see :class:`medseg.io.image.Image` for axis order."""

from medseg.io.channels import find_channel_files, read_channels
from medseg.io.dicom_seg import read_dicom_seg, write_dicom_seg
from medseg.io.image import Image, geometry_differences, place_on_grid
from medseg.io.readers import read_image, write_image

__all__ = [
    "Image",
    "find_channel_files",
    "geometry_differences",
    "place_on_grid",
    "read_channels",
    "read_dicom_seg",
    "read_image",
    "write_dicom_seg",
    "write_image",
]
