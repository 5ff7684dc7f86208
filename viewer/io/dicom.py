"""DICOM header helpers shared by scan and decode: reading, windows, LUTs, View fields."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from viewer.io.sniff import sniff
from viewer.model.study import Patient, Series, Study, View, WindowPreset

# Modalities whose instances never carry a displayable image.
NON_IMAGE_MODALITIES = frozenset({"SR", "PR", "KO", "REG", "SEG", "RTSTRUCT", "RTPLAN",
                                  "RTDOSE", "RTRECORD", "DOC", "ECG", "AU", "HD", "FID",
                                  "PLAN", "RWV", "IVOCT"})
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)

# Tags the scan needs; reading only these (plus pixel-data presence) keeps scans fast.
HEADER_KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID",
    "PatientName", "PatientSex", "PatientBirthDate", "PatientAge", "StudyDate", "StudyTime",
    "StudyDescription", "AccessionNumber", "SeriesNumber", "SeriesDescription", "Modality",
    "InstanceNumber", "ViewPosition", "ImageLaterality", "Laterality", "ViewCodeSequence",
    "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "PhotometricInterpretation",
    "BitsAllocated", "BitsStored", "PixelSpacing", "ImagerPixelSpacing", "WindowCenter",
    "WindowWidth", "WindowCenterWidthExplanation", "DirectoryRecordSequence",
    "SpecificCharacterSet",
)


class HeaderProblem(ValueError):
    """A header that cannot become a View; the message is the user-facing reason."""


def read_dataset(path: str | Path, **kwargs):
    """``pydicom.dcmread`` that forces parsing only for DICOM files without preamble."""
    import pydicom

    kind = sniff(path)
    if kind not in ("dicom", "dicom-raw"):
        raise HeaderProblem("not a DICOM file (no 'DICM' marker and no DICOM data elements)")
    ds = pydicom.dcmread(path, force=kind == "dicom-raw", **kwargs)
    _ensure_transfer_syntax(ds)
    return ds


def _ensure_transfer_syntax(ds) -> None:
    """Files without File Meta need a Transfer Syntax UID before pixels decode."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = ds.original_encoding
    if implicit is None:
        implicit, little = True, True
    uid = ImplicitVRLittleEndian if implicit else (
        ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = uid


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _multi(value) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def _window_pairs(ds) -> list[tuple[int, object, object, float | None, float | None]]:
    """(index, raw centre, raw width, centre, width) per pair; unreadable numbers are None."""
    centers = _multi(ds.get("WindowCenter"))
    widths = _multi(ds.get("WindowWidth"))
    pairs = []
    for i, (center, width) in enumerate(zip(centers, widths)):
        try:
            c, w = float(center), float(width)
        except (TypeError, ValueError, OverflowError):
            c = w = None
        pairs.append((i, center, width, c, w))
    return pairs


def _usable(c: float | None, w: float | None) -> bool:
    return c is not None and w is not None and math.isfinite(c) and math.isfinite(w) and w > 0


def window_presets(ds) -> list[WindowPreset]:
    """Each Window Center/Width pair of the file, with its explanation.

    Pairs that are not finite numbers with a positive width are dropped
    (WindowWidth "1e400" reads as infinity; see `window_notes`).
    """
    explanations = [str(e) for e in _multi(ds.get("WindowCenterWidthExplanation"))]
    presets = []
    for i, _raw_c, _raw_w, c, w in _window_pairs(ds):
        if _usable(c, w):
            label = explanations[i] if i < len(explanations) else f"File window {i + 1}"
            presets.append(WindowPreset(c, w, label.strip()[:64] or f"File window {i + 1}"))
    return presets


def window_notes(ds) -> list[str]:
    """One short note per file window that `window_presets` ignored."""
    return [f"file window {i + 1} ({str(raw_c)[:24]}/{str(raw_w)[:24]}) ignored: centre and "
            "width must be finite and the width positive"
            for i, raw_c, raw_w, c, w in _window_pairs(ds) if not _usable(c, w)]


def read_lut_sequence(item):
    """A ``VoiLut`` from a Modality/VOI LUT Sequence item, or None when malformed."""
    from viewer.io.decode import VoiLut

    descriptor = _multi(item.get("LUTDescriptor"))
    if len(descriptor) != 3 or "LUTData" not in item:
        return None
    entries, first, bits = (int(v) for v in descriptor)
    data = item["LUTData"]
    table = _lut_data_array(data.value, data.VR, bits)
    entries = entries or 65536
    if table.size < entries:
        return None
    return VoiLut(first, bits, table[:entries].astype(np.int64),
                  str(item.get("LUTExplanation", "") or ""))


def _lut_data_array(value, vr: str, bits: int) -> np.ndarray:
    if isinstance(value, (bytes, bytearray)):
        dtype = np.uint8 if bits <= 8 and vr == "OB" else np.dtype("<u2")
        return np.frombuffer(bytes(value), dtype=dtype)
    return np.asarray(_multi(value), dtype=np.int64)


def pixel_spacing(ds) -> tuple[tuple[float, float] | None, str]:
    """(row, column) spacing in mm and its source; None when missing or zero.

    Pixel Spacing is preferred; Imager Pixel Spacing (detector plane, not
    corrected for magnification) is the fallback.
    """
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        values = _multi(ds.get(keyword))
        try:
            pair = tuple(float(v) for v in values[:2])
        except (TypeError, ValueError, OverflowError):
            continue
        if len(pair) == 2 and all(math.isfinite(v) and v > 0 for v in pair):
            return (pair[0], pair[1]), keyword
    return None, ""


def _int(ds, keyword: str, default: int | None = 0) -> int | None:
    try:
        value = ds.get(keyword, default)
        return default if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def view_code_meaning(ds) -> str:
    seq = ds.get("ViewCodeSequence") or []
    return str(seq[0].get("CodeMeaning", "") or "") if len(seq) else ""


def check_image_header(ds, has_pixels: bool) -> None:
    """Raise HeaderProblem with the reason when ``ds`` is no displayable image."""
    sop_class = _text(ds, "SOPClassUID")
    if not (sop_class or _text(ds, "SOPInstanceUID") or _int(ds, "Rows")):
        raise HeaderProblem("DICOM header is damaged or empty: no SOP Class, SOP Instance UID "
                            "or image size found")
    modality = _text(ds, "Modality").upper()
    if modality in NON_IMAGE_MODALITIES:
        raise HeaderProblem(f"not an image (Modality {modality}); nothing to display")
    if not has_pixels:
        raise HeaderProblem("no pixel data in this DICOM file "
                            f"(SOP Class {sop_class or 'unknown'})")
    missing = [k for k in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
               if not _text(ds, k)]
    if missing:
        raise HeaderProblem(f"missing {', '.join(missing)}; cannot place the image in a study")
    if not _int(ds, "Rows") or not _int(ds, "Columns"):
        raise HeaderProblem("Rows/Columns missing or zero")
    check_pixel_geometry(ds)


def check_pixel_geometry(ds) -> None:
    """Scan-time part of the pixel limits (``viewer.io.limits``); raises HeaderProblem."""
    from viewer.io.limits import MAX_FRAME_SAMPLES, SUPPORTED_BITS_ALLOCATED

    rows, cols = _int(ds, "Rows") or 0, _int(ds, "Columns") or 0
    if rows < 0 or cols < 0:
        raise HeaderProblem(f"Rows/Columns {rows}/{cols} are negative; the header is damaged")
    bits = _int(ds, "BitsAllocated", None)
    if bits is not None and bits not in SUPPORTED_BITS_ALLOCATED:
        raise HeaderProblem(f"Bits Allocated {bits} is not supported (1, 8, 16, 32 or 64); "
                            "the header is damaged")
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    if rows * cols * samples > MAX_FRAME_SAMPLES:
        raise HeaderProblem(f"header claims {rows} x {cols} x {samples} samples per frame, "
                            f"above the limit of {MAX_FRAME_SAMPLES:,}; the header is damaged")


def header_to_nodes(ds, path: Path) -> tuple[View, Patient, Study, Series]:
    """Build the View and prototype Patient/Study/Series from a checked header."""
    spacing, spacing_source = pixel_spacing(ds)
    meta = getattr(ds, "file_meta", None)
    view = View(
        view_id=_text(ds, "SOPInstanceUID"), path=path, source="dicom",
        modality=_text(ds, "Modality").upper(), view_position=_text(ds, "ViewPosition").upper(),
        laterality=(_text(ds, "ImageLaterality") or _text(ds, "Laterality")).upper(),
        series_description=_text(ds, "SeriesDescription"), rows=_int(ds, "Rows") or 0,
        columns=_int(ds, "Columns") or 0, frames=_int(ds, "NumberOfFrames", 1) or 1,
        photometric=_text(ds, "PhotometricInterpretation").upper(),
        bits_stored=_int(ds, "BitsStored") or 0,
        transfer_syntax_uid=str(getattr(meta, "TransferSyntaxUID", "") or ""),
        pixel_spacing=spacing, window_presets=window_presets(ds),
        study_uid=_text(ds, "StudyInstanceUID"), series_uid=_text(ds, "SeriesInstanceUID"),
        patient_id=_text(ds, "PatientID"), instance_number=_int(ds, "InstanceNumber", None),
        view_code=view_code_meaning(ds), pixel_spacing_source=spacing_source,
        samples_per_pixel=_int(ds, "SamplesPerPixel", 1) or 1,
    )
    patient = Patient(view.patient_id, _text(ds, "PatientName"), _text(ds, "PatientSex"),
                      _text(ds, "PatientBirthDate"), _text(ds, "PatientAge"))
    study = Study(view.study_uid, view.patient_id, _text(ds, "StudyDate"),
                  _text(ds, "StudyTime"), _text(ds, "StudyDescription"),
                  _text(ds, "AccessionNumber"))
    series = Series(view.series_uid, _int(ds, "SeriesNumber", None), view.series_description,
                    view.modality)
    return view, patient, study, series
