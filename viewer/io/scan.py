"""Scan a folder (or one file) for DICOM and PNG/JPEG images, headers only.

Meant to run on a worker thread: it reads no pixels, reports
``progress(done, total)`` after every file, checks ``cancel()`` between files
and never raises for a bad input file; every unusable file becomes a
``Problem(path, reason)``.
"""
from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import tag_for_keyword

from viewer.io.dicom import (DICOMDIR_SOP_CLASS, HEADER_KEYWORDS, HeaderProblem,
                             check_image_header, header_to_nodes)
from viewer.io.fast_header import read_header_fast
from viewer.io.messages import clip, first_line
from viewer.io.sniff import IMAGE_SUFFIXES, sniff_bytes
from viewer.model.study import Patient, Series, Study, StudyTree, View

log = logging.getLogger(__name__)

_PIXEL_TAG_BYTES = (b"\xe0\x7f\x10\x00", b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")
_PIXEL_TAG_BYTES_BE = (b"\x7f\xe0\x00\x10", b"\x7f\xe0\x00\x08", b"\x7f\xe0\x00\x09")
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_LONG_VRS = (b"OB", b"OW", b"OD", b"OF", b"OL", b"OV", b"UN")
_SCAN_TAGS = [tag_for_keyword(k) for k in HEADER_KEYWORDS]


@dataclass(frozen=True)
class Problem:
    """A file that could not be used, with a readable reason."""

    path: Path
    reason: str


@dataclass
class ScanResult:
    """Studies found, unusable files with reasons, and silently skipped files."""

    studies: StudyTree = field(default_factory=StudyTree)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # DICOMDIR, hidden files, documents
    cancelled: bool = False


def list_files(path: Path) -> list[Path]:
    """All regular files under ``path`` (or ``[path]``), sorted for a stable order."""
    if path.is_file():
        return [path]
    found: list[Path] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        found.extend(Path(root, name) for name in sorted(files))
    return found


def scan_folder(path: str | Path, progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> ScanResult:
    """Read headers of every file under ``path`` into a StudyTree plus Problems."""
    root = Path(path).expanduser()
    result = ScanResult()
    if not root.exists():
        result.problems.append(Problem(root, "path does not exist"))
        return result
    files = list_files(root)
    total = len(files)
    for done, file in enumerate(files, start=1):
        if cancel is not None and cancel():
            result.cancelled = True
            break
        _scan_one(file, result)
        if progress is not None:
            progress(done, total)
    result.studies.sort()
    return result


def scan_files(files: Iterable[Path]) -> ScanResult:
    """Like ``scan_folder`` for an explicit list of files (e.g. a drag-and-drop)."""
    result = ScanResult()
    for file in files:
        _scan_one(Path(file), result)
    result.studies.sort()
    return result


# Companion documents that sit beside studies (READMEs, label tables, reports):
# skipped silently rather than listed as unreadable images.
DOCUMENT_SUFFIXES = frozenset({".md", ".txt", ".json", ".jsonl", ".csv", ".tsv", ".xml",
                               ".html", ".pdf", ".yaml", ".yml", ".log", ".py"})


def _scan_one(path: Path, result: ScanResult) -> None:
    if (path.name.startswith(".") or path.name.upper() == "DICOMDIR"
            or path.suffix.lower() in DOCUMENT_SUFFIXES):
        result.skipped.append(path)
        return
    try:
        outcome = _read_entry(path)
    except HeaderProblem as exc:
        result.problems.append(Problem(path, clip(str(exc))))
        return
    except Exception as exc:  # noqa: BLE001 - a bad file must never stop the scan
        log.debug("header read failed for %s", path, exc_info=True)
        result.problems.append(Problem(path, _describe(exc)))
        return
    if outcome is None:
        result.skipped.append(path)
        return
    view, patient, study, series = outcome
    if not result.studies.add(view, patient, study, series):
        result.problems.append(Problem(path, clip(f"duplicate of image {view.view_id} (ignored)")))


def _describe(exc: Exception) -> str:
    """One short line (a damaged header can make pydicom quote megabytes of value)."""
    return clip(f"unreadable DICOM header ({first_line(exc, 200)})")


def _read_entry(path: Path) -> tuple[View, Patient, Study, Series] | None:
    """Nodes for one file, None for files to skip silently; raises HeaderProblem."""
    with open(path, "rb") as handle:
        head = handle.read(132)
        kind = sniff_bytes(head)
        if kind in ("png", "jpeg"):
            return _picture_entry(path)
        if kind is None:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                raise HeaderProblem(f"not a readable {path.suffix.lower()} image")
            raise HeaderProblem("not a DICOM file (no 'DICM' marker and no DICOM data elements)"
                                if head else "empty file")
        handle.seek(0)
        return _dicom_entry(path, handle, force=kind == "dicom-raw")


def _dicom_entry(path: Path, handle, force: bool) -> tuple[View, Patient, Study, Series] | None:
    ds = _read_header(handle, force)
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or getattr(meta, "MediaStorageSOPClassUID", ""))
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        return None
    has_pixels = _check_pixel_element(handle, path)
    check_image_header(ds, has_pixels)
    return header_to_nodes(ds, path)


def _read_header(handle, force: bool):
    """Header via the fast raw path, else ``pydicom.dcmread`` (no pixels, scan tags only)."""
    import pydicom

    if not force:
        try:
            header = read_header_fast(handle, HEADER_KEYWORDS)
        except Exception:  # noqa: BLE001 - any oddity: let dcmread judge the file
            log.debug("fast header read failed for %s", handle.name, exc_info=True)
            header = None
        if header is not None:
            return header
        handle.seek(0)
    return pydicom.dcmread(handle, force=force, stop_before_pixels=True,
                           specific_tags=_SCAN_TAGS)


def _check_pixel_element(handle, path: Path) -> bool:
    """Whether pixel data follows the header; raises HeaderProblem when truncated.

    pydicom stops right before the pixel data tag, so the next bytes tell
    the element's length; a file shorter than that, or encapsulated data
    without its end delimiter, is truncated.
    """
    start = handle.tell()
    head = handle.read(12)
    if len(head) < 8 or head[:4] not in _PIXEL_TAG_BYTES + _PIXEL_TAG_BYTES_BE:
        return False
    order = "<" if head[:4] in _PIXEL_TAG_BYTES else ">"
    if head[4:6] in _LONG_VRS and len(head) == 12:
        length, header_size = struct.unpack(order + "I", head[8:12])[0], 12
    else:
        length, header_size = struct.unpack(order + "I", head[4:8])[0], 8
    size = os.fstat(handle.fileno()).st_size
    if length == 0xFFFFFFFF:
        handle.seek(max(start, size - 4096))
        if _SEQ_DELIMITER not in handle.read():
            raise HeaderProblem("truncated file: compressed pixel data has no end delimiter")
        return True
    if start + header_size + length > size:
        missing = start + header_size + length - size
        raise HeaderProblem(f"truncated file: pixel data is {missing} bytes short")
    return length > 0


def _picture_entry(path: Path) -> tuple[View, Patient, Study, Series]:
    """PNG/JPEG in a MIMIC-CXR-JPG layout: study = folder, patient = parent folder."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
            mode = img.mode
    except (UnidentifiedImageError, OSError) as exc:
        raise HeaderProblem(f"not a readable image ({first_line(exc, 200)})") from exc
    absolute = path.resolve()
    study_dir = absolute.parent
    patient_id = study_dir.parent.name if study_dir.parent != study_dir else ""
    view = View(view_id=f"file:{absolute}", path=absolute, source="image", modality="",
                rows=height, columns=width, frames=1,
                photometric="MONOCHROME2" if mode in ("L", "I", "I;16", "I;16B", "I;16L", "1")
                else "RGB",
                bits_stored=16 if mode.startswith("I") else 8,
                study_uid=study_dir.name, series_uid=f"file:{study_dir}", patient_id=patient_id,
                samples_per_pixel=1 if mode in ("L", "I", "I;16", "I;16B", "I;16L", "1") else 3)
    return (view, Patient(patient_id), Study(study_dir.name, patient_id),
            Series(view.series_uid, None, "", ""))
