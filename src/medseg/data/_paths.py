"""Path helpers shared by the dataset loaders: safe resolution and image-file naming."""

from __future__ import annotations

from pathlib import Path

from medseg.errors import DatasetError

IMAGE_ENDINGS = (
    ".nii.gz",
    ".nii",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".png",
    ".tif",
    ".tiff",
    ".bmp",
    ".jpg",
    ".jpeg",
)
"""File endings recognised as images when a layout does not declare one (longest first)."""


def resolve_inside(root: Path, value: str | Path, *, source: str) -> Path:
    """Resolve ``value`` against ``root`` and refuse any path that leaves ``root``.

    Parameters
    ----------
    root : Path
        Dataset root; relative paths are taken from here.
    value : str or Path
        Path as written in a manifest or ``dataset.json``.
    source : str
        Where the path came from (file and row), quoted in the error.

    Returns
    -------
    Path
        The path as given, joined to ``root`` when relative. Not resolved, so that a symlink
        inside the dataset keeps its name.

    Raises
    ------
    DatasetError
        "unsafe path" if the path, with ``..`` and symbolic links resolved, lies outside ``root``.
    """
    path = Path(value)
    joined = path if path.is_absolute() else root / path
    real_root = root.resolve()
    real = joined.resolve()
    if real != real_root and not real.is_relative_to(real_root):
        raise DatasetError(
            f"{source}: unsafe path {str(value)!r} resolves to {real}, outside the dataset root "
            f"{real_root}; copy or link the file into the dataset folder"
        )
    return joined


def split_ending(name: str, endings: tuple[str, ...] = IMAGE_ENDINGS) -> tuple[str, str] | None:
    """Split a file name into ``(stem, ending)`` for a known image ending, else ``None``."""
    lower = name.lower()
    for ending in sorted(endings, key=len, reverse=True):
        if lower.endswith(ending) and len(name) > len(ending):
            return name[: -len(ending)], name[-len(ending) :]
    return None


def visible_files(folder: Path) -> list[Path]:
    """Regular files in ``folder`` (not recursive), hidden and temporary files skipped, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
