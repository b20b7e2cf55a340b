"""Time to report a 512 x 512 x 300 CT with 10 structures and 50 lesions, vs plain numpy.

The case: int16 HU noise, 10 ellipsoid organs and 50 small ellipsoid lesions (label 11) inside
them, spacing (z, y, x) = (1.5, 0.78, 0.78) mm. medseg measures everything in ``report.json``
(volumes, intensity statistics, bounding boxes, lesion components with 3D diameter, RECIST
axes, side, containing structure, flags), then renders the HTML and the PDF. The peer is
TotalSegmentator-style statistics in plain numpy: per class a full-size boolean mask, its voxel
count and the mean intensity inside it (``get_basic_statistics``), plus ``scipy.ndimage.label``
for the lesion count. Volumes, mean intensities and the lesion count are checked to agree.

With ``--dicom-seg`` the case is also written as a CT series (pydicom) and its label map as a
DICOM Segmentation of that series (``medseg.io.write_dicom_seg``, every frame stored, then only
the frames holding a segment), read back and checked voxel for voxel; the reference point is the
same label map written as NIfTI.

Run: ``python benchmarks/bench_report.py [--slices 300] [--repeats 3] [--dicom-seg]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage

from benchtools import median_seconds, print_row
from medseg.io import Image, place_on_grid, read_image, write_dicom_seg, write_image
from medseg.report import LabelInfo, build_report, write_report

SPACING = (1.5, 0.78, 0.78)
STRUCTURES = 10
LESIONS = 50


def make_case(slices: int, seed: int = 0) -> tuple[Image, Image]:
    """Synthetic CT (1, Z, 512, 512) int16 and labels uint8: 10 organs, 50 lesions (label 11)."""
    rng = np.random.default_rng(seed)
    shape = (slices, 512, 512)
    hu = rng.normal(-50, 30, size=shape).astype(np.int16)
    labels = np.zeros(shape, np.uint8)
    centres = []
    for k in range(STRUCTURES):
        row, col = divmod(k, 5)
        centre = np.array([slices * (0.3 + 0.4 * row), 130 + 0.0 * col, 60 + 98 * col])
        centre[1] = 150 + 210 * row
        radii = np.array([slices * 0.18, 70, 42]) * rng.uniform(0.8, 1.0, 3)
        box, inside = _ellipsoid(shape, centre, radii)
        labels[box][inside] = k + 1
        hu[box][inside] += np.int16(40 + 10 * k)
        centres.append((centre, radii))
    for j in range(LESIONS):
        centre, radii = centres[j % STRUCTURES]
        offset = rng.uniform(-0.5, 0.5, 3) * radii
        lesion_radii = rng.uniform(2.0, 8.0, 3) / np.array([1.0, 1.0, 1.0])
        box, inside = _ellipsoid(shape, centre + offset, lesion_radii)
        labels[box][inside] = STRUCTURES + 1
        hu[box][inside] = np.int16(20)
    geometry = {"spacing": SPACING, "origin": (0.0, 0.0, 0.0), "direction": np.eye(3)}
    image = Image(array=hu[None], meta={"modality": "CT"}, **geometry)
    return image, Image(array=labels[None], **geometry)


def _ellipsoid(shape, centre, radii):
    lo = np.maximum(np.floor(centre - radii).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radii).astype(int) + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True)) <= 1
    return box, inside


def totalsegmentator_style(image: Image, labels: np.ndarray) -> dict[int, tuple[float, float]]:
    """Per class: volume (ml) and mean intensity, one full-size mask per class (plain numpy)."""
    voxel_ml = float(np.prod(image.spacing)) / 1000.0
    data = image.array[0]
    out = {}
    for k in range(1, STRUCTURES + 2):
        mask = labels == k
        count = int(mask.sum())
        mean = float(np.average(data, weights=mask)) if count else 0.0
        out[k] = (count * voxel_ml, mean)
    _, n_lesions = ndimage.label(labels == STRUCTURES + 1, structure=np.ones((3, 3, 3)))
    out[0] = (float(n_lesions), 0.0)
    return out


def peak_mib(fn) -> tuple[object, float]:
    """Result of ``fn()`` and the peak traced memory (numpy included) above the start, MiB."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] - start
    tracemalloc.stop()
    return result, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dicom-seg", action="store_true", help="also time DICOM-SEG I/O")
    args = parser.parse_args()
    image, seg = make_case(args.slices)
    labels = seg.array[0]
    names = {k: f"organ_{k}" for k in range(1, STRUCTURES + 1)} | {STRUCTURES + 1: "lesion"}
    info = LabelInfo(names=names, channel_names={0: "CT"})

    def measure():
        return build_report(image, seg, labels=info)

    report, medseg_peak = peak_mib(measure)
    peer, peer_peak = peak_mib(lambda: totalsegmentator_style(image, labels))
    for s in report.findings.structures:
        volume, mean = peer[s.label]
        assert abs(s.volume_ml - volume) < 1e-9 * max(volume, 1), (s.name, s.volume_ml, volume)
        assert abs(s.intensity["CT"].mean - mean) < 1e-6 * max(abs(mean), 1), s.name
    assert len(report.findings.lesions) == int(peer[0][0]), (len(report.findings.lesions), peer[0])

    t_medseg = median_seconds(measure, args.repeats)
    t_peer = median_seconds(lambda: totalsegmentator_style(image, labels), args.repeats)
    c_medseg = cpu_seconds(measure, args.repeats)
    c_peer = cpu_seconds(lambda: totalsegmentator_style(image, labels), args.repeats)
    formats = ("json", "csv", "html", "pdf")
    with tempfile.TemporaryDirectory() as tmp:
        write_report(report, image, seg, Path(tmp), formats=formats)  # warm-up: imports, fonts
        start, cpu_start = time.perf_counter(), time.process_time()
        _, render_peak = peak_mib(
            lambda: write_report(report, image, seg, Path(tmp), formats=formats)
        )
        t_render = time.perf_counter() - start
        c_render = time.process_time() - cpu_start

    info = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(
        f"CPU: {info.get('model name', platform.processor())} (family {info.get('cpu family')} "
        f"model {info.get('model')}), {len(os.sched_getaffinity(0))} cores; load: {load}"
    )
    shape = "x".join(map(str, labels.shape))
    n = len(report.findings.lesions)
    print(f"case {shape}, {STRUCTURES} structures, {n} lesions; outputs agree with the peer")
    print_row(
        "measurements, wall",
        t_medseg,
        "numpy (TotalSegmentator-style)",
        t_peer,
        f"peak {medseg_peak:.0f} MiB vs {peer_peak:.0f} MiB",
    )
    print_row("measurements, process CPU", c_medseg, "numpy (TotalSegmentator-style)", c_peer, "")
    print(
        f"{'rendering JSON+CSV+HTML+PDF':<40} | wall {t_render:7.3f} s, CPU {c_render:7.3f} s, "
        f"peak {render_peak:.0f} MiB"
    )
    print(
        f"{'total report (measure + render)':<40} | wall {t_medseg + t_render:7.3f} s, "
        f"CPU {c_medseg + c_render:7.3f} s (goal <= 5 s)"
    )
    if args.dicom_seg:
        dicom_seg_io(image, seg, names)


def dicom_seg_io(image: Image, seg: Image, names: dict[int, str]) -> None:
    """Write the case as a CT series, its labels as DICOM-SEG (full, then labelled frames only)."""
    with tempfile.TemporaryDirectory() as tmp:
        series = Path(tmp) / "ct"
        series.mkdir()
        write_series(series, image.array[0], image.spacing)
        ct = read_image(series)
        labels = ct.with_array(seg.array)
        start, cpu = time.perf_counter(), time.process_time()
        write_image(labels, Path(tmp) / "labels.nii.gz")
        nifti = (time.perf_counter() - start, time.process_time() - cpu)
        size = (Path(tmp) / "labels.nii.gz").stat().st_size / 2**20
        print(
            f"{'NIfTI label map write (reference)':<40} | wall {nifti[0]:7.3f} s, "
            f"CPU {nifti[1]:7.3f} s, {size:.1f} MiB"
        )
        for omit in (False, True):
            path = Path(tmp) / f"seg_{omit}.dcm"
            start, cpu = time.perf_counter(), time.process_time()
            write_dicom_seg(labels, series, names, path, omit_empty_frames=omit)
            wrote = (time.perf_counter() - start, time.process_time() - cpu)
            start, cpu = time.perf_counter(), time.process_time()
            back = place_on_grid(read_image(path), ct)
            read = (time.perf_counter() - start, time.process_time() - cpu)
            assert np.array_equal(back.array, labels.array)
            assert back.same_geometry(ct)
            kind = "labelled frames only" if omit else "every frame"
            print(
                f"{'DICOM-SEG, ' + kind:<40} | write wall {wrote[0]:6.2f} s CPU {wrote[1]:6.2f} s; "
                f"read wall {read[0]:6.2f} s CPU {read[1]:6.2f} s; "
                f"{path.stat().st_size / 2**20:.0f} MiB; voxels agree"
            )


def write_series(folder: Path, hu: np.ndarray, spacing: tuple[float, ...]) -> None:
    """``hu`` (Z, Y, X) int16 as an axial CT Image Storage series, one file per slice."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study, series_uid, frame = generate_uid(), generate_uid(), generate_uid()
    for k, plane in enumerate(hu):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series_uid
        ds.FrameOfReferenceUID, ds.Modality = frame, "CT"
        ds.PatientID, ds.PatientName, ds.InstanceNumber = "BENCH", "Bench^Report", k + 1
        ds.ImagePositionPatient = [0.0, 0.0, k * spacing[0]]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [spacing[1], spacing[2]], spacing[0]
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = plane.astype("<i2").tobytes()
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)


def cpu_seconds(fn, repeats: int) -> float:
    """Median process CPU time of ``repeats`` calls (less sensitive than wall time to load)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
