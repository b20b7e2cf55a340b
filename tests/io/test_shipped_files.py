"""Every image file pydicom, nibabel, nilearn and scikit-image ship, medseg vs its owner.

For each file (and each folder of pydicom's DICOM test files) medseg either reads it or refuses it.
A read is checked against the library that owns the format:

* voxel values against pydicom's decode with the modality LUT / rescale applied (DICOM), nibabel's
  ``dataobj`` (NIfTI, MGH) or Pillow/tifffile (2D rasters);
* geometry (the physical position of the corner voxels, LPS mm) against SimpleITK/GDCM (DICOM,
  where GDCM reads the file) or nibabel's affine (NIfTI, MGH);
* a write -> read round trip through every writer medseg has (PNG/TIFF for 2D images only), which
  must keep voxels and geometry (shape, spacing, origin, direction).

A refusal must be a one-line ``MedsegError`` naming the file. Any other exception, any warning or
stderr output from a library, and a peak memory of 500 MB or more fail the file. Run this module as
a script to print the counts of files read and refused, and why.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import MedsegError
from medseg.io import Image, read_image, write_image

PEAK_LIMIT_MB = 500.0  # checked where /proc/self/clear_refs exists (Linux)
NOT_IMAGES = (
    ".txt", ".json", ".dump", ".icc", ".py", ".pyc", ".pyi", ".rst", ".m", ".csv", ".tsv",
    ".md", ".sh", ".dat", ".bin", ".bin.gz", ".xml", ".npy", ".npz", ".trk", ".tck", ".gii",
    ".gii.gz", ".gii.bz2", ".nc", ".label", ".annot", ".tar.gz", ".tar.bz2",
)  # fmt: skip


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _is_image_candidate(path: Path) -> bool:
    name = path.name.lower()
    return "__pycache__" not in path.parts and not name.endswith(NOT_IMAGES)


def shipped_paths() -> list[tuple[str, Path]]:
    """``(package, path)`` for every shipped image file, plus each folder of pydicom's files."""
    found: list[tuple[str, Path]] = []
    if _package_dir("pydicom") is not None:
        from pydicom.data import get_testdata_files

        files = sorted(Path(f) for f in get_testdata_files())
        found += [("pydicom", p) for p in files if _is_image_candidate(p)]
        found += [("pydicom", folder) for folder in sorted({p.parent for p in files})]
    roots = {
        "nibabel": ["tests/data", "nicom/tests/data"],
        "nilearn": ["datasets/data", "datasets/tests/data", "image/tests/data"],
        "skimage": ["data"],
    }
    for package, subdirs in roots.items():
        base = _package_dir(package)
        if base is None:
            continue
        for sub in subdirs:
            folder = base / sub
            if folder.is_dir():
                files = sorted(p for p in folder.rglob("*") if p.is_file())
                found += [(package, p) for p in files if _is_image_candidate(p)]
    return found


def _hwm_reset() -> float:
    """Reset the process's peak RSS to its current RSS; return that RSS in MB (NaN off Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return float("nan")
    return _status_mb("VmRSS")


def _status_mb(key: str) -> float:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return float("nan")
    return next((int(x.split()[1]) / 1024 for x in lines if x.startswith(key + ":")), float("nan"))


@dataclass
class Outcome:
    """What happened to one shipped file."""

    package: str
    path: Path
    status: str = "read"  # "read" or "refused"
    reason: str = ""
    problems: list[str] = field(default_factory=list)
    peak_mb: float = 0.0
    shape: tuple[int, ...] = ()
    checked: list[str] = field(default_factory=list)  # "values", "geometry", round-trip suffixes


class _StderrCapture:
    """Captures what C libraries write to file descriptor 2."""

    def __enter__(self) -> _StderrCapture:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode(errors="replace")
        self._file.close()


def _foreign_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        f"library warning: {w.category.__name__}: {str(w.message).splitlines()[0][:150]}"
        for w in caught
        if "medseg" not in Path(w.filename).parts
    ]


def _read(outcome: Outcome) -> Image | None:
    """medseg's read, with warnings, stderr and peak memory recorded into ``outcome``."""
    base = _hwm_reset()
    image = None
    with warnings.catch_warnings(record=True) as caught, _StderrCapture() as err:
        warnings.simplefilter("always")
        try:
            image = read_image(outcome.path)
        except MedsegError as error:
            outcome.status, outcome.reason = "refused", str(error)
        except Exception as error:  # the failure this module exists to find
            outcome.status = "refused"
            outcome.reason = f"{type(error).__name__}: {error}"
            outcome.problems.append(f"traceback: {type(error).__name__}: {error}"[:300])
    outcome.peak_mb = _status_mb("VmHWM") - base
    outcome.problems += _foreign_warnings(caught)
    if err.text.strip():
        outcome.problems.append(f"stderr output: {err.text.strip().splitlines()[0][:150]}")
    if outcome.peak_mb >= PEAK_LIMIT_MB:
        outcome.problems.append(f"peak memory {outcome.peak_mb:.0f} MB")
    if outcome.status == "refused" and not outcome.problems:
        if "\n" in outcome.reason:
            outcome.problems.append("refusal message spans several lines")
        if outcome.path.name not in outcome.reason:
            outcome.problems.append("refusal message does not name the file")
    return image


# --- references from the owning libraries -------------------------------------------------------


def _corners(shape: tuple[int, ...]) -> np.ndarray:
    """Index vectors (array order) of the corners of a grid, shape (2**D, D)."""
    grids = np.meshgrid(*[[0, max(s - 1, 0)] for s in shape], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1).astype(float)


def _medseg_world(image: Image, indices: np.ndarray) -> np.ndarray:
    """LPS (x, y, z) positions of array indices (rows), padded to 3D."""
    zyx = np.asarray(image.origin) + (image.direction @ (indices * image.spacing).T).T
    xyz = zyx[:, ::-1]
    return np.pad(xyz, ((0, 0), (0, 3 - xyz.shape[1])))


def _nibabel_reference(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(voxels in medseg's (C, Z, Y, X) layout, 4x4 LPS affine over (z, y, x) indices)."""
    import nibabel as nib

    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
    if data.dtype.fields:
        data = np.stack([data[n] for n in data.dtype.names], axis=-1)
    spatial = data.shape[:3]
    data = data.reshape(*spatial, -1)  # (x, y, z, C)
    data = np.moveaxis(data, -1, 0).transpose(0, 3, 2, 1)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine
    reverse = np.eye(4)[[2, 1, 0, 3]]
    return data, lps @ reverse


def _dicom_reference(path: Path) -> np.ndarray:
    """pydicom's decode with the modality LUT applied, in medseg's (C, Z, Y, X) layout."""
    import gzip

    import pydicom
    from pydicom.pixels import apply_modality_lut

    if path.name.lower().endswith(".gz"):
        import io

        ds = pydicom.dcmread(io.BytesIO(gzip.decompress(path.read_bytes())), force=True)
    else:
        ds = pydicom.dcmread(path, force=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = apply_modality_lut(ds.pixel_array, ds)
    if "DoseGridScaling" in ds:  # RT Dose module: stored x scaling = dose in DoseUnits
        arr = arr * float(ds.DoseGridScaling)
    groups = ds.get("SharedFunctionalGroupsSequence")
    transform = groups[0].get("PixelValueTransformationSequence") if groups else None
    if transform and "RescaleSlope" not in ds:  # enhanced multi-frame: rescale in the groups
        arr = arr * float(transform[0].RescaleSlope) + float(transform[0].RescaleIntercept)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    if frames == 1:
        arr = arr[None]
    if samples == 1:
        arr = arr[..., None]
    return np.moveaxis(arr, -1, 0)


def _is_dicom(path: Path) -> bool:
    import gzip

    name = path.name.lower()
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as file:
        return name.endswith((".dcm", ".dcm.gz")) or file.read(132)[128:] == b"DICM"


def _series_reference(folder: Path, series_uid: str) -> np.ndarray:
    """The series' slices decoded by pydicom, sorted along the slice normal, (1, Z, Y, X)."""
    import pydicom

    slices = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception:
            continue  # other files in the folder are not part of the series
        if str(ds.get("SeriesInstanceUID", "")) == series_uid and "PixelData" in ds:
            cosines = np.asarray(ds.ImageOrientationPatient, float)
            normal = np.cross(cosines[:3], cosines[3:])
            along = float(np.asarray(ds.ImagePositionPatient, float) @ normal)
            slices.append((along, _dicom_reference(path)[0, 0]))
    slices.sort(key=lambda item: item[0])
    return np.stack([plane for _, plane in slices])[None]


def _itk_world(path: Path, image: Image) -> np.ndarray | None:
    """LPS corner positions of ``image``'s grid as SimpleITK/GDCM places them, if it reads them."""
    import SimpleITK as sitk

    try:
        with _StderrCapture():
            if path.is_dir():
                reader = sitk.ImageSeriesReader()
                names = reader.GetGDCMSeriesFileNames(str(path))
                ref = sitk.ReadImage(names) if names else None
            else:
                reader = sitk.ImageFileReader()
                reader.SetFileName(str(path))
                reader.ReadImageInformation()
                ref = reader
    except RuntimeError:
        return None
    if ref is None:
        return None
    size = tuple(reversed(ref.GetSize()))
    if size[-len(image.spatial_shape) :] != image.spatial_shape[-len(size) :]:
        return None
    ndim = len(size)
    corners = _corners(image.spatial_shape)[:, -ndim:]
    direction = np.asarray(ref.GetDirection()).reshape(ndim, ndim)
    index_xyz = corners[:, ::-1] * np.asarray(ref.GetSpacing())
    points = np.asarray(ref.GetOrigin()) + index_xyz @ direction.T
    return np.pad(points, ((0, 0), (0, 3 - ndim)))


def _values_differ(ours: np.ndarray, ref: np.ndarray) -> str | None:
    if ours.shape != ref.shape:
        return f"voxel array shape {ours.shape} vs reference {ref.shape}"
    a, b = ours.astype(np.float64), ref.astype(np.float64)
    scale = float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 1.0
    same = np.isclose(a, b, rtol=1e-6, atol=1e-6 * max(scale, 1.0), equal_nan=True)
    if same.all():
        return None
    where = tuple(int(i) for i in np.argwhere(~same)[0])
    return f"{int((~same).sum())} voxel values differ, e.g. at {where}: {a[where]} vs {b[where]}"


def _plain_copy(path: Path, folder: Path) -> Path:
    """``path`` itself, or for a gzipped file its decompressed copy in ``folder`` (for GDCM)."""
    if not path.name.lower().endswith(".gz"):
        return path
    import gzip

    copy = folder / "decompressed.dcm"
    copy.write_bytes(gzip.decompress(path.read_bytes()))
    return copy


def _check_against_owner(outcome: Outcome, image: Image, folder: Path) -> None:
    path = outcome.path
    name = path.name.lower()
    reference: np.ndarray | None = None
    world: np.ndarray | None = None
    if path.is_file() and _is_dicom(path):
        reference = _dicom_reference(path)
        world = _itk_world(_plain_copy(path, folder), image)
    elif path.is_dir():
        reference = _series_reference(path, image.meta["series_uid"])
        world = _itk_world(path, image)
    elif name.endswith((".nii", ".nii.gz", ".mgz", ".mgh", ".hdr", ".img")):
        reference, affine = _nibabel_reference(path)
        if reference.shape[1:] == image.spatial_shape or image.ndim == 3:
            corners = _corners(
                image.spatial_shape if image.ndim == 3 else (1, *image.spatial_shape)
            )
            world = (affine @ np.c_[corners, np.ones(len(corners))].T).T[:, :3]
            if image.ndim == 2:
                reference = reference[:, 0]
    elif name.endswith((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif")):
        import imageio.v3 as iio

        raw = np.asarray(iio.imread(path))
        reference = raw[None] if raw.ndim == 2 else np.moveaxis(raw[..., :3], -1, 0)
    if reference is not None:
        outcome.checked.append("values")
        problem = _values_differ(image.array, reference)
        if problem:
            outcome.problems.append(f"values: {problem}")
    if world is not None:
        outcome.checked.append("geometry")
        ours = _medseg_world(image, _corners(image.spatial_shape))
        if not np.allclose(ours, world, atol=1e-3):
            worst = float(np.abs(ours - world).max())
            outcome.problems.append(f"geometry: corner positions differ by up to {worst:.4g} mm")


def _check_round_trip(outcome: Outcome, image: Image, folder: Path) -> None:
    suffixes = [".nii.gz", ".nrrd", ".mha"]
    if image.ndim == 2:
        suffixes += [".tif", ".png"]
    for suffix in suffixes:
        target = folder / f"roundtrip{suffix}"
        with warnings.catch_warnings(record=True) as caught, _StderrCapture() as err:
            warnings.simplefilter("always")
            try:
                write_image(image, target)
                back = read_image(target)
            except MedsegError as error:
                if "\n" in str(error):
                    outcome.problems.append(f"{suffix} write refusal spans several lines")
                continue
            except Exception as error:
                outcome.problems.append(f"traceback on {suffix}: {type(error).__name__}: {error}")
                continue
        outcome.problems += [f"{suffix}: {w}" for w in _foreign_warnings(caught)]
        if err.text.strip():
            outcome.problems.append(f"{suffix}: stderr output {err.text.strip()[:100]}")
        outcome.checked.append(suffix)
        problem = _values_differ(back.array, image.array)
        if problem:
            outcome.problems.append(f"{suffix} round trip values: {problem}")
        lost = _round_trip_geometry(image, back, suffix)
        if lost:
            outcome.problems.append(f"{suffix} round trip geometry: {lost}")


def _round_trip_geometry(image: Image, back: Image, suffix: str) -> str:
    if back.ndim != image.ndim or back.num_channels != image.num_channels:
        return f"array {image.array.shape} came back as {back.array.shape}"
    return "; ".join(
        name
        for name, ok in (
            ("spacing", np.allclose(back.spacing, image.spacing, rtol=1e-5, atol=1e-5)),
            ("origin", np.allclose(back.origin, image.origin, rtol=1e-6, atol=1e-3)),
            ("direction", np.allclose(back.direction, image.direction, atol=1e-5)),
        )
        if not ok
    )


def examine(package: str, path: Path, folder: Path) -> Outcome:
    """Read ``path`` with medseg and check the result (see the module docstring)."""
    outcome = Outcome(package=package, path=path)
    image = _read(outcome)
    if image is None:
        return outcome
    outcome.shape = tuple(image.array.shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the owners' own warnings are not medseg's
            _check_against_owner(outcome, image, folder)
    except Exception as error:  # a reference that cannot be computed is a test bug, say so
        outcome.problems.append(f"reference failed: {type(error).__name__}: {error}"[:300])
    _check_round_trip(outcome, image, folder)
    return outcome


def _reason_group(outcome: Outcome) -> str:
    """The refusal message without the path and numbers, to count refusals by reason."""
    text = outcome.reason.replace(str(outcome.path), "PATH")
    text = text.split(";")[0].split("(")[0]
    return re.sub(r"\d+(\.\d+)?", "N", text).strip()[:90]


def summary(outcomes: list[Outcome]) -> str:
    """Counts of files read and refused, by package, format and reason (a Markdown table)."""
    rows = collections.Counter()
    for o in outcomes:
        suffix = "folder" if o.path.is_dir() else ("".join(o.path.suffixes[-2:]) or "(none)")
        what = "read" if o.status == "read" else f"refused: {_reason_group(o)}"
        rows[(o.package, suffix.lower(), what)] += 1
    lines = ["| package | suffix | what medseg does | files |", "|---|---|---|---|"]
    lines += [f"| {p} | {s} | {w} | {n} |" for (p, s, w), n in sorted(rows.items())]
    read = [o for o in outcomes if o.status == "read"]
    lines.append(f"\n{len(outcomes)} paths: {len(read)} read, {len(outcomes) - len(read)} refused")
    checks = collections.Counter(c for o in read for c in o.checked)
    lines.append("checks on the files read: " + ", ".join(f"{k} {n}" for k, n in checks.items()))
    worst = max(outcomes, key=lambda o: o.peak_mb)
    lines.append(f"largest peak memory: {worst.peak_mb:.0f} MB ({worst.path.name})")
    return "\n".join(lines)


SHIPPED = shipped_paths()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Outcome]:
    folder = tmp_path_factory.mktemp("roundtrip")
    return {path: examine(package, path, folder) for package, path in SHIPPED}


@pytest.mark.skipif(not SHIPPED, reason="none of pydicom, nibabel, nilearn, scikit-image installed")
@pytest.mark.parametrize("path", [p for _, p in SHIPPED], ids=[f"{k}:{p.name}" for k, p in SHIPPED])
def test_shipped_file(outcomes: dict[Path, Outcome], path: Path) -> None:
    outcome = outcomes[path]
    assert not outcome.problems, f"{path}: " + " | ".join(outcome.problems)


@pytest.mark.skipif(not SHIPPED, reason="none of pydicom, nibabel, nilearn, scikit-image installed")
def test_shipped_summary(outcomes: dict[Path, Outcome], capsys: pytest.CaptureFixture) -> None:
    """Print the counts (shown in the test log) and check every read file was compared."""
    table = summary(list(outcomes.values()))
    with capsys.disabled():
        print("\n" + table)
    read = [o for o in outcomes.values() if o.status == "read"]
    assert read
    assert all("values" in o.checked and ".nii.gz" in o.checked for o in read)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        results = [examine(k, p, Path(tmp)) for k, p in SHIPPED]
    for o in results:
        flag = "FAIL" if o.problems else "ok  "
        print(f"{flag} {o.status:8s} {o.peak_mb:7.1f}MB {o.package}:{o.path.name} {o.shape}")
        for problem in o.problems:
            print(f"       - {problem}")
        if o.status == "refused":
            print(f"       > {o.reason[:200]}")
    print(summary(results))
    print(f"{sum(bool(o.problems) for o in results)} paths with problems")
