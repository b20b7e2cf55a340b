"""medseg.io read/write speed against SimpleITK and nibabel on the same files.

Plain script: ``python benchmarks/bench_io.py [--size 160] [--repeats 3]``. Each row checks that
medseg and the peer return the same voxels, then prints the median of the repeats (after one
warm-up) and the ratio. medseg reads NIfTI voxels with nibabel (ITK zeroes NaN) after header
checks, and DICOM files and series with pydicom (plus the pylibjpeg decoders).

The last rows read single compressed DICOM files that pydicom ships: medseg against pydicom's own
decode with the modality LUT (values must agree exactly) and against SimpleITK/GDCM, then the peak
memory (RSS above the level before the read) of reading ``SC_rgb_jpeg.dcm``, a 4.4 KB file.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from benchtools import median_seconds, print_row
from medseg.io import Image, read_image, write_image


def _write_dicom_series(folder: Path, volume: np.ndarray, rng: np.random.Generator) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    series, study = generate_uid(), generate_uid()
    for k in rng.permutation(volume.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series, "CT"
        ds.ImagePositionPatient = [0, 0, 2.5 * float(k)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.5
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.Rows, ds.Columns = volume.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = volume[k].astype("<u2").tobytes()
        ds.save_as(folder / f"{rng.integers(1 << 40):012x}.dcm", enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160, help="edge of the cubic test volume")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.size
    ct = rng.integers(0, 2000, size=(1, n, n, n)).astype(np.int16) - 1024
    ct[:, :, : n // 2] = -1024  # some compressible air
    image = Image(array=ct, spacing=(2.5, 0.8, 0.8), origin=(1.0, 2.0, 3.0), direction=np.eye(3))
    print(
        f"machine: {platform.processor() or platform.machine()}, {platform.system()}, "
        f"volume (1, {n}, {n}, {n}) int16, median of {args.repeats}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
            path = folder / f"ct{suffix}"
            t_write = median_seconds(lambda p=path: write_image(image, p), args.repeats)
            t_sitk_write = median_seconds(
                lambda p=path, s=suffix: sitk.WriteImage(
                    sitk.GetImageFromArray(ct[0]), str(p.with_name("peer" + s)), True
                ),
                args.repeats,
            )
            print_row(f"write {suffix}", t_write, "SimpleITK", t_sitk_write, "max diff 0")
            ours = read_image(path).array[0]
            peer = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
            diff = float(np.abs(ours.astype(float) - peer).max())
            t_read = median_seconds(lambda p=path: read_image(p), args.repeats)
            t_peer = median_seconds(lambda p=path: sitk.ReadImage(str(p)), args.repeats)
            print_row(f"read {suffix}", t_read, "SimpleITK", t_peer, f"max diff {diff:g}")
            if suffix.startswith(".nii"):
                t_nib = median_seconds(
                    lambda p=path: np.asanyarray(nib.load(p, mmap=False).dataobj), args.repeats
                )
                print_row(f"read {suffix}", t_read, "nibabel  ", t_nib, f"max diff {diff:g}")

        series = folder / "series"
        series.mkdir()
        _write_dicom_series(series, (ct[0] + 1024).astype(np.uint16), rng)
        ours = read_image(series).array[0]
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series)))
        peer = sitk.GetArrayFromImage(reader.Execute())
        diff = float(np.abs(ours.astype(float) - peer).max())

        def peer_series() -> None:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series)))
            reader.Execute()

        t_read = median_seconds(lambda: read_image(series), args.repeats)
        print_row(
            f"read DICOM series ({n} files)",
            t_read,
            "SimpleITK",
            median_seconds(peer_series, args.repeats),
            f"max diff {diff:g}",
        )
    _shipped_dicom_rows(args.repeats)


def _pydicom_values(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(path)
    return apply_modality_lut(ds.pixel_array, ds)


def _peak_mb(fn: Callable[[], object]) -> float:
    """Peak RSS (MB) above the RSS before ``fn`` ran (Linux ``clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    fn()
    return (_status_kb("VmHWM") - before) / 1024


def _status_kb(key: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
    return int(line.split()[1])


def _shipped_dicom_rows(repeats: int) -> None:
    from pydicom.data import get_testdata_file

    names = ["JPEG2000.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg.dcm"]
    for name in names:
        path = Path(get_testdata_file(name, download=False))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = read_image(path).array
            peer = _pydicom_values(path)
            peer = peer[None, None] if peer.ndim == 2 else np.moveaxis(peer, -1, 0)[:, None]
            diff = float(np.abs(ours.astype(float) - peer).max())
            t_ours = median_seconds(lambda p=path: read_image(p), repeats * 5)
            t_pydicom = median_seconds(lambda p=path: _pydicom_values(p), repeats * 5)
            slow = name == "SC_rgb_jpeg.dcm"  # GDCM takes seconds on this 4.4 KB file
            t_sitk = median_seconds(lambda p=path: sitk.ReadImage(str(p)), 1 if slow else repeats)
        print_row(f"read {name}", t_ours, "pydicom  ", t_pydicom, f"max diff {diff:g}")
        print_row(f"read {name}", t_ours, "SimpleITK", t_sitk, "GDCM decode")
    path = Path(get_testdata_file("SC_rgb_jpeg.dcm", download=False))
    peak_sitk = _peak_mb(lambda: sitk.ReadImage(str(path)))
    peak_ours = _peak_mb(lambda: read_image(path))
    print(
        f"{'peak memory, read SC_rgb_jpeg.dcm':<40} | medseg {peak_ours:7.1f} MB | "
        f"SimpleITK {peak_sitk:7.1f} MB"
    )


if __name__ == "__main__":
    main()
