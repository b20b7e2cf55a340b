"""Fixtures every test folder shares: a pydicom CT-series writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def ct_series_writer():  # type: ignore[no-untyped-def]
    """The :func:`write_ct_series` helper, as a fixture (test modules cannot import conftest)."""
    return write_ct_series


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    *,
    pixel_spacing: tuple[float, float],
    slice_spacing: float,
    origin_xyz: tuple[float, float, float],
    row_cosine: np.ndarray,
    column_cosine: np.ndarray,
    rng: np.random.Generator,
    series_uid: str | None = None,
    slope: float = 2.0,
    intercept: float = -1024.0,
) -> str:
    """Write ``hu`` (Z, Y, X) as a CT Image Storage series with shuffled names and write order.

    Slice ``k`` lies at ``origin_xyz + k * slice_spacing * (row x column)`` (LPS mm). Stored
    values are ``(hu - intercept) / slope`` as uint16; ``InstanceNumber`` runs backwards so that a
    reader relying on it would get the z order wrong. Returns the SeriesInstanceUID.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    series_uid = series_uid or generate_uid()
    study_uid, frame_uid = generate_uid(), generate_uid()
    stored = np.round((hu - intercept) / slope)
    assert np.all((stored >= 0) & (stored < 2**16)), "test volume does not fit uint16"
    normal = np.cross(row_cosine, column_cosine)
    depth = hu.shape[0]
    for k in rng.permutation(depth):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "CT"
        ds.PatientID, ds.PatientName = "TEST", "Test^Patient"
        ds.SeriesDescription = "synthetic CT"
        ds.InstanceNumber = int(depth - k)
        position = np.asarray(origin_xyz) + k * slice_spacing * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_cosine, *column_cosine)]
        ds.PixelSpacing = [f"{pixel_spacing[0]:.6f}", f"{pixel_spacing[1]:.6f}"]
        ds.SliceThickness = f"{slice_spacing:.6f}"
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = stored[k].astype("<u2").tobytes()
        ds.save_as(folder / f"{rng.integers(1 << 40):012x}.dcm", enforce_file_format=True)
    return str(series_uid)
