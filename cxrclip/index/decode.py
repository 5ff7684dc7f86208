"""Reading one archive file into pixels + identifiers (runs in worker processes; no torch).

DICOM headers are read first (without pixels) to reject what is not a chest
radiograph; pixels then come from `cxrclip.image_io` (the one grey conversion
of cxrclip: Modality LUT, the file's first window, MONOCHROME1 inverted).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrclip.image_io import IMAGE_SUFFIXES, ImageReadError, is_dicom, read_dataset, read_dicom, read_image
from cxrclip.index.store import ViewMeta
from cxrclip.index.walk import SourceFile, mimic_study, study_key

RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "DR", "RG", "OT", ""})
CHEST_PARTS = frozenset({"", "CHEST", "THORAX", "LUNG", "PORT CHEST", "CHEST_LAT", "CHEST PA", "TORAX"})
_VIEW_NAMES = frozenset({"PA", "AP", "LL", "RL", "LATERAL", "LAT", "AP_SUPINE", "PA_LATERAL"})


@dataclass(frozen=True)
class DecodedView:
    """A readable view: its source file, identifiers and 8-bit display pixels."""

    source: SourceFile
    meta: ViewMeta
    pixels: np.ndarray


@dataclass(frozen=True)
class FailedView:
    """A file that is not an indexable chest radiograph, with the reason."""

    source: SourceFile
    reason: str


def _text(ds, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text or None


def _check_chest(ds, path: Path) -> None:
    modality = (_text(ds, "Modality") or "").upper()
    if modality not in RADIOGRAPH_MODALITIES:
        raise ImageReadError(f"{path}: not a radiograph (Modality {modality})")
    part = (_text(ds, "BodyPartExamined") or "").upper()
    if part not in CHEST_PARTS:
        raise ImageReadError(f"{path}: not a chest image (BodyPartExamined {part})")


def dicom_meta(path: Path) -> ViewMeta:
    """Identifiers from a DICOM header (pixels not read); raises ImageReadError when not a chest radiograph."""
    ds = read_dataset(path, stop_before_pixels=True)
    _check_chest(ds, path)
    study_uid = _text(ds, "StudyInstanceUID")
    key = study_key("dicom", study_uid) if study_uid else study_key("folder", str(path.parent))
    return ViewMeta(view_id=_text(ds, "SOPInstanceUID") or f"file:{path}", study_key=key,
                    study_uid=study_uid, series_uid=_text(ds, "SeriesInstanceUID"),
                    view_position=(_text(ds, "ViewPosition") or "").upper() or None,
                    study_date=_text(ds, "StudyDate"), patient_id=_text(ds, "PatientID"),
                    patient_name=_text(ds, "PatientName"), accession=_text(ds, "AccessionNumber"))


def image_meta(path: Path) -> ViewMeta:
    """Identifiers of a PNG/JPEG view from its path (MIMIC-CXR-JPG layout, else its folder)."""
    stem = path.stem.upper()
    position = stem if stem in _VIEW_NAMES else None
    mimic = mimic_study(path)
    if mimic is not None:
        patient, study = mimic
        return ViewMeta(f"file:{path}", study_key("mimic", f"{patient}/{study}"), study_uid=study,
                        view_position=position, patient_id=patient)
    return ViewMeta(f"file:{path}", study_key("folder", str(path.parent)), view_position=position)


def read_view(source: SourceFile) -> DecodedView | FailedView:
    """Read one file: a `DecodedView`, or a `FailedView` with the reason (never raises for bad files)."""
    path = Path(source.path)
    try:
        if is_dicom(path):
            meta = dicom_meta(path)
            pixels = read_dicom(path).pixels
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            meta, pixels = image_meta(path), read_image(path).pixels
        else:
            return FailedView(source, f"not a DICOM, PNG or JPEG file (suffix {path.suffix or 'none'!r})")
    except ImageReadError as exc:
        return FailedView(source, str(exc))
    except (MemoryError, RuntimeError, ValueError, TypeError, OSError) as exc:  # decoder bugs on odd files
        return FailedView(source, f"{path}: cannot read ({type(exc).__name__}: {exc})")
    if pixels.ndim != 2 or min(pixels.shape) < 16:
        return FailedView(source, f"{path}: image too small or not 2-D (shape {pixels.shape})")
    return DecodedView(source, meta, pixels)
