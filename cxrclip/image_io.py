"""Headless reading of X-ray files into 8-bit display pixels for `cxrclip score`.

The viewer has its own, richer I/O; `cxrclip` may not import it, so this
module does the minimum the model needs: DICOM through pydicom's Modality
LUT → VOI LUT/window → MONOCHROME1 inversion, and PNG/JPEG through Pillow.
The result is what a reader sees with the file's default window: uint8,
2-D, air dark.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic"})
# Pillow modes whose arrays are used as they are; others are converted to RGB first.
_DIRECT_MODES = frozenset({"L", "I;16", "I;16B", "I;16L", "I", "F", "RGB"})


class ImageReadError(ValueError):
    """A file cannot be read as an X-ray image."""


@dataclass(frozen=True)
class ImageFile:
    """One decoded image: id (SOPInstanceUID or "file:" + path), 8-bit pixels, label."""

    view_id: str
    pixels: np.ndarray
    label: str
    path: Path


@dataclass(frozen=True)
class ImageFolder:
    """Images read from a study folder, and the files that were skipped with the reason."""

    study_id: str
    images: list[ImageFile]
    skipped: list[tuple[Path, str]]


def is_dicom(path: Path) -> bool:
    """True for a DICOM file: 'DICM' at byte 128, a data element at byte 0 (a file written
    without preamble, as older archives do), or a DICOM suffix."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or _starts_with_data_element(head)


# Groups a DICOM file without preamble starts with (file meta, identifying, patient).
_FIRST_GROUPS = (0x0002, 0x0008, 0x0010)
_VRS = frozenset(b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
                 b"UN UR US UT UV".split())


def _starts_with_data_element(head: bytes) -> bool:
    """The first bytes parse as a little-endian data element of group 0002/0008/0010, with an
    explicit VR or an implicit length under 64 KiB (so pydicom's forced read is meaningful)."""
    if len(head) < 8 or int.from_bytes(head[:2], "little") not in _FIRST_GROUPS:
        return False
    return head[4:6] in _VRS or int.from_bytes(head[4:8], "little") < 1 << 16


def read_dataset(path: Path, stop_before_pixels: bool = False):
    """The pydicom Dataset of a DICOM file. A file without preamble and 'DICM' marker is
    parsed with ``force=True`` when its first bytes are a data element, and given the
    Transfer Syntax its encoding implies, so its pixels decode; raises `ImageReadError`."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        refused: Exception = exc
    except (OSError, EOFError, ValueError) as exc:
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc})") from exc
    with Path(path).open("rb") as handle:
        raw = _starts_with_data_element(handle.read(8))
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=stop_before_pixels) if raw else None
    except Exception:  # noqa: BLE001 - a forced parse of an odd file may fail in any way
        ds = None
    if ds is None or not any(k in ds for k in ("SOPClassUID", "SOPInstanceUID", "Modality", "PixelData")):
        raise ImageReadError(f"{path}: not a readable DICOM file ({refused})") from refused
    _add_transfer_syntax(ds)
    return ds


def _add_transfer_syntax(ds) -> None:
    """A dataset read without File Meta gets the Transfer Syntax UID of its own encoding.

    The viewer does the same in `viewer.io.dicom` (the import rules keep cxrclip and the
    viewer apart, so each has its reader)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return
    implicit, little = ds.original_encoding
    syntax = (ImplicitVRLittleEndian if implicit in (True, None)
              else ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax


def to_uint8(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Linearly map [low, high] (default: the array's min/max) to 0..255, clipping."""
    values = np.asarray(values, dtype=np.float32)
    low = float(np.nanmin(values)) if low is None else float(low)
    high = float(np.nanmax(values)) if high is None else float(high)
    if not high > low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _to_gray(pixels: np.ndarray) -> np.ndarray:
    """RGB(A) → luminance (ITU-R BT.601); 2-D arrays pass through."""
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        rgb = pixels[..., :3].astype(np.float32)
        return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    raise ImageReadError(f"unexpected pixel array shape {pixels.shape}; expected HxW or HxWx3")


def _voi_output_range(ds) -> tuple[float, float] | None:
    """Output range of pydicom's `apply_voi_lut` for this dataset, or None if it has no VOI."""
    voi_seq = ds.get("VOILUTSequence")
    if voi_seq:
        return 0.0, float(2 ** int(voi_seq[0].LUTDescriptor[2]) - 1)
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    if ds.get("ModalityLUTSequence"):
        low, high = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2 ** int(ds.BitsStored) - 1)
    else:
        low, high = float(-(2 ** (int(ds.BitsStored) - 1))), float(2 ** (int(ds.BitsStored) - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    return (min(low, high), max(low, high))


def _dicom_display(ds) -> np.ndarray:
    """Decoded DICOM dataset → uint8 display image with the file's first window."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    frames = int(ds.get("NumberOfFrames", 1) or 1)
    pixels = ds.pixel_array[0] if frames > 1 else ds.pixel_array
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if not photometric.startswith("MONOCHROME"):
        return to_uint8(_to_gray(pixels), 0, 255 if pixels.dtype == np.uint8 else None)
    values = apply_modality_lut(pixels, ds)
    out_range = _voi_output_range(ds)
    if out_range is not None:
        values = apply_voi_lut(values, ds, index=0)
        display = to_uint8(values, *out_range)
    else:
        display = to_uint8(values)
    return 255 - display if photometric == "MONOCHROME1" else display


def read_dicom(path: Path) -> ImageFile:
    """Read a DICOM file into 8-bit display pixels (first frame of multi-frame files)."""
    path = Path(path)
    ds = read_dataset(path)
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM file has no pixel data (SOP class {ds.get('SOPClassUID', '?')})")
    try:
        display = _dicom_display(ds)
    except (RuntimeError, NotImplementedError, ValueError, AttributeError) as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "?")
        raise ImageReadError(
            f"{path}: cannot decode pixels (transfer syntax {syntax}): {exc}. "
            "Install pylibjpeg, pylibjpeg-openjpeg and pyjpegls for compressed files."
        ) from exc
    view_id = str(ds.get("SOPInstanceUID") or f"file:{path.resolve()}")
    label = str(ds.get("ViewPosition") or ds.get("SeriesDescription") or path.name)
    return ImageFile(view_id, display, label, path)


def read_image(path: Path) -> ImageFile:
    """Read a PNG/JPEG/TIFF/BMP into 8-bit gray (16-bit images are min-max scaled)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode not in _DIRECT_MODES:
                image = image.convert("RGB")
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageReadError(f"{path}: not a readable image file ({exc})") from exc
    gray = _to_gray(array)
    if gray.dtype == np.uint8:
        display = gray
    elif array.dtype == np.uint8:
        display = to_uint8(gray, 0, 255)
    else:
        display = to_uint8(gray)
    return ImageFile(f"file:{path.resolve()}", display, path.name, path)


def read_file(path: Path) -> ImageFile:
    """Read one DICOM or image file; the format is decided by content, then suffix."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path} does not exist or is not a file")
    return read_dicom(path) if is_dicom(path) else read_image(path)


def _candidate(path: Path) -> bool:
    suffix = path.suffix.lower()
    return path.is_file() and not path.name.startswith(".") and (
        suffix in IMAGE_SUFFIXES or suffix in DICOM_SUFFIXES or suffix == "" and is_dicom(path)
    )


def read_folder(folder: Path) -> ImageFolder:
    """Read every DICOM/image file under `folder` (recursively), in path order.

    Files that fail to decode are listed in `skipped` with the reason; if
    none can be read, `ImageReadError` names the folder.
    """
    folder = Path(folder)
    images: list[ImageFile] = []
    skipped: list[tuple[Path, str]] = []
    for path in sorted(p for p in folder.rglob("*") if _candidate(p)):
        try:
            images.append(read_file(path))
        except ImageReadError as exc:
            skipped.append((path, str(exc)))
    if not images:
        reasons = "; ".join(reason for _, reason in skipped[:3])
        raise ImageReadError(f"{folder}: no readable DICOM/PNG/JPEG files found{': ' + reasons if reasons else ''}")
    return ImageFolder(folder.name, images, skipped)


def read_study(path: Path) -> ImageFolder:
    """Read a single file or a study folder into an `ImageFolder`."""
    path = Path(path)
    if path.is_dir():
        return read_folder(path)
    image = read_file(path)
    return ImageFolder(path.stem, [image], [])
