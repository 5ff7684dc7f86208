"""Write a rendered phantom view as a valid CR/DX DICOM file.

Stored values, photometric interpretation (MONOCHROME1/2), bits stored, rescale
and window vary per study like in real archives; every field derives from the
seed, so the files are byte-identical across runs. No time-based fields.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
PREFIX = "1.2.826.0.1.3680043.10.1437."   # private-style root for synthetic UIDs
IMPLEMENTATION_UID = PREFIX + "1.0"


@dataclass(frozen=True)
class StudyTags:
    """Per-study identifiers and acquisition settings shared by both views."""

    patient_id: str
    patient_name: str
    sex: str
    age: int
    study_uid: str
    accession: str
    study_date: str
    study_time: str
    modality: str            # "CR" or "DX"
    photometric: str         # "MONOCHROME1" or "MONOCHROME2"
    bits_stored: int
    rescale: tuple[float, float] | None
    fov_mm: float


def uid(*parts: object) -> str:
    """Deterministic UID from the given parts (seed, study index, purpose...)."""
    return generate_uid(prefix=PREFIX, entropy_srcs=[str(p) for p in parts])


def study_tags(seed: int, index: int, sex: str, age: int,
               rng: np.random.Generator) -> StudyTags:
    """Identifiers and stored-value conventions of one study."""
    day = dt.date(2020, 1, 1) + dt.timedelta(days=int(rng.integers(0, 5 * 365)))
    secs = int(rng.integers(7 * 3600, 22 * 3600))
    modality = "CR" if rng.random() < 0.5 else "DX"
    return StudyTags(
        patient_id=f"PH{seed % 10000:04d}{index:06d}",
        patient_name=f"PHANTOM^{index:04d}",
        sex=sex, age=age,
        study_uid=uid(seed, index, "study"),
        accession=f"A{seed % 1000:03d}{index:07d}",
        study_date=day.strftime("%Y%m%d"),
        study_time=f"{secs // 3600:02d}{secs // 60 % 60:02d}{secs % 60:02d}",
        modality=modality,
        photometric="MONOCHROME1" if rng.random() < 0.35 else "MONOCHROME2",
        bits_stored=int(rng.choice([12, 14, 16])),
        rescale=(1.0, -1024.0) if rng.random() < 0.25 else None,
        fov_mm=float(rng.uniform(380.0, 430.0)),
    )


def to_stored(display: np.ndarray, tags: StudyTags) -> tuple[np.ndarray, float, float]:
    """Map a [0, 1] display image to stored integers; return (pixels, window centre, width).

    The window is given in output units of the modality LUT (after rescale) and chosen
    so that the default window reproduces the display image.
    """
    top = (1 << tags.bits_stored) - 1
    lo, hi = 0.04 * top, 0.92 * top
    values = lo + display.astype(np.float64) * (hi - lo)
    if tags.photometric == "MONOCHROME1":
        values = top - values
    stored = np.clip(np.round(values), 0, top).astype(np.uint16)
    slope, intercept = tags.rescale or (1.0, 0.0)
    center = (lo + hi) / 2 if tags.photometric == "MONOCHROME2" else top - (lo + hi) / 2
    return stored, round(center * slope + intercept, 1), round((hi - lo) * slope, 1)


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CXRCLIP_PHANTOM"
    return meta


def _set_patient_and_study(ds: Dataset, tags: StudyTags, index: int) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = tags.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = tags.study_time
    ds.AccessionNumber = tags.accession
    ds.Modality = tags.modality
    ds.Manufacturer = "CXR-CLIP Viewer phantom generator"
    ds.StudyDescription = "CHEST 2 VIEWS"
    ds.PatientName = tags.patient_name
    ds.PatientID = tags.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = tags.sex
    ds.PatientAge = f"{tags.age:03d}Y"
    ds.BodyPartExamined = "CHEST"
    ds.StudyInstanceUID = tags.study_uid
    ds.StudyID = f"{index}"


def _set_pixels(ds: Dataset, stored: np.ndarray, tags: StudyTags,
                window: tuple[float, float]) -> None:
    rows, cols = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = tags.photometric
    ds.Rows, ds.Columns = rows, cols
    spacing = round(tags.fov_mm / cols, 4)
    ds.PixelSpacing = [spacing, spacing]
    if tags.modality == "DX":
        ds.ImagerPixelSpacing = [spacing, spacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, tags.bits_stored, tags.bits_stored - 1
    ds.PixelRepresentation = 0
    if tags.rescale:
        ds.RescaleSlope, ds.RescaleIntercept = f"{tags.rescale[0]:g}", f"{tags.rescale[1]:g}"
        ds.RescaleType = "US"
    ds.WindowCenter, ds.WindowWidth = f"{window[0]:g}", f"{window[1]:g}"
    ds.WindowCenterWidthExplanation = "PHANTOM DEFAULT"
    ds.VOILUTFunction = "LINEAR"
    ds.PixelData = stored.astype("<u2").tobytes()


def build_dataset(stored: np.ndarray, tags: StudyTags, view_position: str, series_number: int,
                  seed: int, index: int, window: tuple[float, float], visit: int = 0) -> Dataset:
    """A complete DICOM dataset (with file meta) for one view (``PA``, ``AP`` or ``LL``).

    ``visit`` > 0 (a prior study of the same patient) gives new Series/SOP UIDs."""
    lateral = view_position == "LL"
    sop_class = CR_STORAGE if tags.modality == "CR" else DX_PRESENTATION_STORAGE
    extra = ("visit", visit) if visit else ()
    sop_uid = uid(seed, index, "sop", view_position, *extra)
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    _set_patient_and_study(ds, tags, index)
    ds.SeriesDescription = "LATERAL" if lateral else view_position
    ds.ViewPosition = view_position
    ds.PatientOrientation = ["P", "F"] if lateral else ["L", "F"]
    if tags.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImageLaterality = "U"
    ds.SeriesInstanceUID = uid(seed, index, "series", view_position, *extra)
    ds.SeriesNumber = series_number
    ds.InstanceNumber = 1
    _set_pixels(ds, stored, tags, window)
    return ds


def write_dicom(path: Path, ds: Dataset) -> None:
    """Write with a valid preamble and file meta (explicit VR little endian)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
