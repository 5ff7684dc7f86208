"""Fixtures for the viewer data-layer tests: small hand-made DICOM files."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def build_dataset(pixels: np.ndarray, *, bits_stored: int | None = None,
                  photometric: str = "MONOCHROME2", **attrs) -> Dataset:
    """A CR-like single-frame dataset holding ``pixels`` (uint16/int16/uint8)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = attrs.get("SOPInstanceUID") or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P1"
    ds.PatientName = "Test^Patient"
    ds.Modality = "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


@pytest.fixture
def make_dicom(tmp_path: Path) -> Callable[..., Path]:
    """Write ``build_dataset(pixels, **attrs)`` to ``tmp_path/name`` and return the path."""

    def make(pixels: np.ndarray, name: str = "image.dcm", **attrs) -> Path:
        ds = build_dataset(pixels, **attrs)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        return path

    return make


@pytest.fixture
def dataset_builder() -> Callable[..., Dataset]:
    """The ``build_dataset`` function, for tests that edit a dataset before saving."""
    return build_dataset
