"""One exception hierarchy for every user-facing failure.

The CLI catches :class:`MedsegError` in one place, prints its message on one line and exits
with code 1. Messages name the file and the problem, and where possible the fix.
"""


class MedsegError(Exception):
    """Base class of every error medseg raises on bad input or configuration."""


class ImageReadError(MedsegError):
    """A file is missing, unreadable, truncated, not an image, or declares absurd dimensions."""


class ImageWriteError(MedsegError):
    """An image could not be written (unsupported format, unwritable folder)."""


class GeometryError(MedsegError):
    """Two images that must share a voxel grid do not (shape, spacing, origin, direction)."""


class DatasetError(MedsegError):
    """A dataset is malformed: missing pairs, bad dataset.json, unknown labels, unsafe paths."""


class ConfigError(MedsegError):
    """A plan or configuration file is invalid: unknown key, bad value, wrong type."""


class ModelFormatError(MedsegError):
    """A model folder is incomplete, corrupt or written by an incompatible medseg version."""
