"""Decode the pixels of one View (first frame) into stored and modality values.

DICOM goes through pydicom's pixel handlers (which call pylibjpeg, the
openjpeg/libjpeg/rle plugins, pyjpegls or Pillow as the transfer syntax
needs); SimpleITK (GDCM/ITK) is the fallback. PNG/JPEG go through Pillow.
The result keeps the stored values (for the status bar and fast LUT
rendering) and everything the render pipeline needs (``LutInfo``); the
float32 modality values are derived lazily through a small table.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewer.io.values import ValueIndex, build_value_index
from viewer.model.study import View, WindowPreset

log = logging.getLogger(__name__)

# Packages that decode each compressed transfer syntax (for DecodeError messages).
_SYNTAX_PACKAGES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg + pylibjpeg-libjpeg, or Pillow, or SimpleITK",
    "1.2.840.10008.1.2.4.51": "pylibjpeg + pylibjpeg-libjpeg, or Pillow, or SimpleITK",
    "1.2.840.10008.1.2.4.57": "pylibjpeg + pylibjpeg-libjpeg, or SimpleITK",
    "1.2.840.10008.1.2.4.70": "pylibjpeg + pylibjpeg-libjpeg, or SimpleITK",
    "1.2.840.10008.1.2.4.80": "pyjpegls, or pylibjpeg + pylibjpeg-libjpeg, or SimpleITK",
    "1.2.840.10008.1.2.4.81": "pyjpegls, or pylibjpeg + pylibjpeg-libjpeg, or SimpleITK",
    "1.2.840.10008.1.2.4.90": "pylibjpeg + pylibjpeg-openjpeg, or Pillow, or SimpleITK",
    "1.2.840.10008.1.2.4.91": "pylibjpeg + pylibjpeg-openjpeg, or Pillow, or SimpleITK",
    "1.2.840.10008.1.2.4.201": "pylibjpeg + pylibjpeg-openjpeg>=2.2",
    "1.2.840.10008.1.2.4.202": "pylibjpeg + pylibjpeg-openjpeg>=2.2",
    "1.2.840.10008.1.2.4.203": "pylibjpeg + pylibjpeg-openjpeg>=2.2",
    "1.2.840.10008.1.2.5": "pylibjpeg + pylibjpeg-rle (or pydicom's built-in RLE decoder)",
}


class DecodeError(RuntimeError):
    """Pixels of a file could not be decoded; the message says why and what to install."""


@dataclass(frozen=True)
class VoiLut:
    """A LUT from a DICOM LUT Sequence item: first mapped input value, bits, table."""

    first_mapped: int
    bits: int
    table: np.ndarray
    explanation: str = ""

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Look values up (clamped to the table ends, as PS3.3 C.11.2.1.1 says)."""
        idx = np.clip(np.rint(values).astype(np.int64) - self.first_mapped, 0,
                      len(self.table) - 1)
        return self.table[idx]

    @property
    def max_output(self) -> int:
        """Largest output value; descriptors that under-state their bits are corrected."""
        bits = self.bits
        peak = int(self.table.max()) if self.table.size else 0
        while peak >= (1 << bits) and bits < 32:
            bits += 1
        return (1 << bits) - 1


@dataclass
class LutInfo:
    """Everything after the stored pixels that render needs."""

    photometric: str = "MONOCHROME2"
    windows: list[WindowPreset] = field(default_factory=list)
    voi_function: str = "LINEAR"
    voi_luts: list[VoiLut] = field(default_factory=list)
    presentation_shape: str = "IDENTITY"  # IDENTITY | INVERSE
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    modality_lut: VoiLut | None = None  # Modality LUT Sequence, if any

    @property
    def inverted(self) -> bool:
        """True when low values are shown bright (MONOCHROME1 or INVERSE shape).

        DICOM requires Presentation LUT Shape INVERSE together with MONOCHROME1
        in DX, so the two are one inversion, not two.
        """
        return self.photometric == "MONOCHROME1" or self.presentation_shape == "INVERSE"


@dataclass
class DecodedImage:
    """First frame of a view, as stored plus what is needed to display it.

    ``values`` maps stored values to table indices and holds the modality
    value of each index, so rendering is one table lookup per pixel.
    """

    stored: np.ndarray  # HxW as stored (first frame; luminance for colour input)
    lut: LutInfo
    values: ValueIndex
    rgb: np.ndarray | None = None  # HxWx3 uint8 for colour inputs
    view: View | None = None
    decoder: str = ""
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def modality(self) -> np.ndarray:
        """HxW float32 after the Modality LUT (computed once, on first use)."""
        if "modality" not in self.cache:
            self.cache["modality"] = self.values.modality_of(self.stored)
        return self.cache["modality"]

    @property
    def shape(self) -> tuple[int, int]:
        return self.stored.shape[0], self.stored.shape[1]


def load_image(view: View) -> DecodedImage:
    """Decode the first frame of ``view``; raises ``DecodeError`` on any failure."""
    try:
        if view.source == "image":
            return _load_picture(view)
        return _load_dicom(view)
    except DecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the contract: any failure is a DecodeError
        raise DecodeError(f"cannot decode {view.path}: {type(exc).__name__}: {exc}") from exc


# --- PNG / JPEG -------------------------------------------------------------

def _load_picture(view: View) -> DecodedImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(view.path) as img:
            img.load()
            arr, rgb = _picture_arrays(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise DecodeError(f"cannot read image {view.path}: {exc}") from exc
    values = build_value_index(arr, _identity)
    return DecodedImage(arr, LutInfo(photometric="RGB" if rgb is not None else "MONOCHROME2"),
                        values, rgb=rgb, view=view, decoder="Pillow")


def _picture_arrays(img) -> tuple[np.ndarray, np.ndarray | None]:
    """Gray array (uint8/uint16) and, for colour pictures, an RGB copy."""
    if img.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img, dtype=np.uint16), None
    if img.mode == "I":
        arr = np.asarray(img)
        if arr.min() >= 0 and arr.max() < 65536:
            return arr.astype(np.uint16), None
        return arr.astype(np.int32), None
    if img.mode in ("L", "1"):
        return np.asarray(img.convert("L")), None
    rgb = np.asarray(img.convert("RGB"))
    if _is_gray(rgb):
        return np.ascontiguousarray(rgb[..., 0]), None
    return _luminance(rgb), rgb


def _identity(values: np.ndarray) -> np.ndarray:
    """Modality = stored, for pictures and already-rescaled ITK output."""
    return values.astype(np.float32)


def _is_gray(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of an RGB uint8 image, as uint8 (what models get)."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(rgb.astype(np.float32) @ weights), 0, 255).astype(np.uint8)


# --- DICOM ------------------------------------------------------------------

def _load_dicom(view: View) -> DecodedImage:
    from viewer.io.dicom import read_dataset

    ds = read_dataset(view.path)
    if not any(tag in ds for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009)):
        raise DecodeError(f"{view.path} has no readable Pixel Data element (transfer syntax "
                          f"{_syntax_label(ds)}); the file may be truncated or not an image")
    arr, decoder, itk_rescaled = _decode_first_frame(ds, view)
    lut = _lut_info(ds)
    rgb = None
    if arr.ndim == 2 and lut.photometric == "PALETTE COLOR":
        arr = _palette_to_rgb(arr, ds)
    if arr.ndim == 3:
        rgb = _to_rgb_uint8(arr, ds)
        arr = _luminance(rgb)
        lut = LutInfo(photometric="RGB")
        modality_fn = _identity
    elif itk_rescaled:
        lut.rescale_slope, lut.rescale_intercept, lut.modality_lut = 1.0, 0.0, None
        modality_fn = _identity
    else:
        modality_fn = _modality_function(ds)
    values = build_value_index(arr, modality_fn)
    return DecodedImage(arr, lut, values, rgb=rgb, view=view, decoder=decoder)


def _decode_first_frame(ds, view: View) -> tuple[np.ndarray, str, bool]:
    """First frame via pydicom, else SimpleITK; returns (array, decoder, itk_rescaled)."""
    import pydicom.pixels

    try:
        arr = np.asarray(pydicom.pixels.pixel_array(ds, index=0))
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return arr, "pydicom", False
    except Exception as exc:  # noqa: BLE001 - plugin errors have no common base class
        first_error = exc
    log.info("pydicom could not decode %s (%s); trying SimpleITK", view.path, first_error)
    try:
        arr = _sitk_first_frame(view.path)
    except Exception as exc:  # noqa: BLE001 - ITK raises plain RuntimeError/others
        raise DecodeError(_no_decoder_message(ds, view.path, first_error, exc)) from exc
    return arr, "SimpleITK", True


def _sitk_first_frame(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        arr = arr[0]
    return arr


def _syntax_label(ds) -> str:
    """``"JPEG 2000 Image Compression (Lossless Only) (1.2.840.10008.1.2.4.90)"``."""
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if not uid:
        return "unknown (no Transfer Syntax UID)"
    return f"{getattr(uid, 'name', str(uid))} ({uid})"


def _no_decoder_message(ds, path: Path, first: Exception, second: Exception) -> str:
    uid = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    packages = _SYNTAX_PACKAGES.get(uid, "no known package; convert the file to an uncompressed "
                                         "transfer syntax (e.g. with dcmdjpeg or gdcmconv)")
    return (f"cannot decode pixels of {path}: transfer syntax {_syntax_label(ds)}; "
            f"decodable with: {packages}. pydicom said: {first}; SimpleITK said: "
            f"{str(second).strip().splitlines()[-1] if str(second).strip() else second}")


def _to_rgb_uint8(arr: np.ndarray, ds) -> np.ndarray:
    """Colour DICOM (RGB, YBR already converted by pydicom, PALETTE) to RGB uint8."""
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    bits = int(ds.get("BitsStored", 0) or 0)
    if arr.dtype == np.uint16 and (bits > 8 or int(arr.max()) > 255):
        return (arr >> 8).astype(np.uint8) if bits in (0, 16) else np.clip(
            np.rint(arr * (255.0 / ((1 << bits) - 1))), 0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _palette_to_rgb(arr: np.ndarray, ds) -> np.ndarray:
    import pydicom.pixels

    rgb = np.asarray(pydicom.pixels.apply_color_lut(arr, ds))
    if rgb.dtype != np.uint8:  # 16-bit palette entries: keep the high byte
        rgb = (rgb.astype(np.uint16) >> 8).astype(np.uint8)
    return rgb


def _lut_info(ds) -> LutInfo:
    from viewer.io.dicom import read_lut_sequence, window_presets

    luts = [lut for item in ds.get("VOILUTSequence", []) or []
            if (lut := read_lut_sequence(item)) is not None]
    mlut_seq = ds.get("ModalityLUTSequence") or []
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper().strip()
    shape = str(ds.get("PresentationLUTShape", "IDENTITY") or "IDENTITY").upper().strip()
    return LutInfo(
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper().strip(),
        windows=window_presets(ds),
        voi_function=function if function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR",
        voi_luts=luts,
        presentation_shape=shape if shape in ("IDENTITY", "INVERSE") else "IDENTITY",
        rescale_slope=float(ds.get("RescaleSlope", 1.0) or 1.0),
        rescale_intercept=float(ds.get("RescaleIntercept", 0.0) or 0.0),
        modality_lut=read_lut_sequence(mlut_seq[0]) if mlut_seq else None,
    )


def _modality_function(ds):
    """stored -> modality values, by pydicom's ``apply_modality_lut`` (slope/intercept or LUT)."""
    import pydicom.pixels

    def apply(values: np.ndarray) -> np.ndarray:
        return np.asarray(pydicom.pixels.apply_modality_lut(values, ds), dtype=np.float32)

    return apply
