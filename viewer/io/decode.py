"""Decode the pixels of one View (first frame) into stored and modality values.

``load_image(view)`` is the one entry point. Untrusted compressed pixel data
are decoded in a worker process (``viewer.io.isolate``), so a decoder that
aborts, panics or runs out of memory costs a `DecodeError`, not the viewer.
Uncompressed (native) DICOM is decoded in-process by pydicom's numpy reader
after ``viewer.io.limits.check_pixel_header`` has verified that the data
hold every byte the header claims: no native decoder runs on it, so nothing
can abort. Isolation modes (argument, or ``set_isolation`` / the environment
variable ``CXRCLIP_DECODE_ISOLATION``):

- ``auto`` (default): native DICOM in-process, everything else in a worker;
- ``process``: every DICOM file in a worker;
- ``inline``: everything in-process (tests and benchmarks only).

DICOM goes through pydicom's pixel handlers (pylibjpeg, openjpeg, libjpeg,
rle, pyjpegls or Pillow as the syntax needs); SimpleITK (GDCM) is a fallback
for compressed syntaxes only, and its output must match the header's size. It
is an optional extra (``pip install 'cxrclip-viewer[gdcm]'``, 264 MB): without
it, a file only GDCM could read fails with a message naming the extra.
PNG/JPEG go through Pillow. The result keeps the stored values (for the
status bar and fast LUT rendering) and what the render pipeline needs.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewer.io.colour import is_gray, luminance, palette_to_rgb, rgb_to_uint8
from viewer.io.limits import check_pixel_header
from viewer.io.messages import (ADVICE_DAMAGED, NATIVE_SYNTAXES, DecodeError, clip,
                                decode_message, first_line, syntax_uid)
from viewer.io.values import ValueIndex, build_value_index
from viewer.model.study import View, WindowPreset

log = logging.getLogger(__name__)

__all__ = ["DecodeError", "DecodedImage", "LutInfo", "VoiLut", "load_image", "set_isolation",
           "get_isolation", "decode_dicom", "ISOLATION_MODES", "IN_PROCESS_SYNTAXES"]

ISOLATION_MODES = ("auto", "process", "inline")
_isolation = os.environ.get("CXRCLIP_DECODE_ISOLATION", "auto")
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)
_SIZE_WARNING = re.compile(r"(\d+) vs\.? (\d+) bytes expected")
GDCM_INSTALL = "pip install 'cxrclip-viewer[gdcm]'"  # the optional fallback decoder (SimpleITK)


# Uncompressed syntaxes whose pixels pydicom reads with numpy alone (no native decoder,
# no inflation): safe to decode in the viewer's process once the length check passed.
IN_PROCESS_SYNTAXES = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1",
                                 "1.2.840.10008.1.2.2"})


class NeedsIsolation(DecodeError):
    """The in-process path met a compressed file; `load_image` sends it to a worker."""


def _no_stage(_name: str) -> None:
    return None


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
    value of each index, so rendering is one table lookup per pixel. Colour
    inputs keep ``rgb`` (shown in colour) and their BT.601 luma as
    ``stored`` (what models and the grey pipeline get). ``notes`` lists
    header values that were ignored (e.g. an infinite window width).
    """

    stored: np.ndarray  # HxW as stored (first frame; luminance for colour input)
    lut: LutInfo
    values: ValueIndex
    rgb: np.ndarray | None = None  # HxWx3 uint8 for colour inputs
    view: View | None = None
    decoder: str = ""
    notes: list[str] = field(default_factory=list)
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

    @property
    def is_colour(self) -> bool:
        return self.rgb is not None


def set_isolation(mode: str) -> None:
    """Default isolation for `load_image`: ``auto``, ``process`` or ``inline``."""
    global _isolation
    if mode not in ISOLATION_MODES:
        raise ValueError(f"isolation must be one of {ISOLATION_MODES}, got {mode!r}")
    _isolation = mode


def get_isolation() -> str:
    return _isolation if _isolation in ISOLATION_MODES else "auto"


def load_image(view: View, isolation: str | None = None) -> DecodedImage:
    """Decode the first frame of ``view``; raises ``DecodeError`` on any failure.

    ``isolation`` overrides the default mode (see the module docstring).
    """
    mode = isolation or get_isolation()
    if mode not in ISOLATION_MODES:
        raise ValueError(f"isolation must be one of {ISOLATION_MODES}, got {mode!r}")
    if view.source == "image":
        return _guarded(view, _load_picture)
    from viewer.io.isolate import decode_in_worker

    if mode == "inline":
        return _guarded(view, decode_dicom)
    if mode == "auto" and view.transfer_syntax_uid in IN_PROCESS_SYNTAXES:
        try:
            return _guarded(view, lambda v: decode_dicom(v, native_only=True))
        except NeedsIsolation:  # the file is not what the scan saw: decode it isolated
            pass
    return decode_in_worker(view)


def _guarded(view: View, fn: Callable[[View], DecodedImage]) -> DecodedImage:
    try:
        return fn(view)
    except DecodeError:
        raise
    except MemoryError:
        raise DecodeError(decode_message(view.path, view.transfer_syntax_uid,
                                         "not enough memory to decode", ADVICE_DAMAGED)) from None
    except Exception as exc:  # noqa: BLE001 - the contract: any failure is a DecodeError
        log.debug("decode of %s failed", view.path, exc_info=True)
        raise DecodeError(decode_message(view.path, view.transfer_syntax_uid,
                                         f"cannot decode ({first_line(exc)})")) from exc


# --- PNG / JPEG -------------------------------------------------------------

def _load_picture(view: View) -> DecodedImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(view.path) as img:
            img.load()
            arr, rgb = _picture_arrays(img)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise DecodeError(clip(f"{Path(view.path).name}: cannot read image "
                               f"({first_line(exc)})")) from exc
    values = build_value_index(rgb if rgb is not None else arr, _identity)
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
    if is_gray(rgb):
        return np.ascontiguousarray(rgb[..., 0]), None
    return luminance(rgb), rgb


def _identity(values: np.ndarray) -> np.ndarray:
    """Modality = stored, for pictures, colour and already-rescaled ITK output."""
    return values.astype(np.float32)


# --- DICOM ------------------------------------------------------------------

def decode_dicom(view: View, stage: Callable[[str], None] = _no_stage,
                 native_only: bool = False) -> DecodedImage:
    """Decode a DICOM view in this process (run it in a worker for untrusted data).

    ``stage(name)`` is told which step runs (the worker reports it when a
    decoder crashes). ``native_only`` refuses compressed syntaxes (used for
    the in-process path, where no native decoder may run).
    """
    from viewer.io.dicom import HeaderProblem, read_dataset

    stage("reading the header (pydicom)")
    try:
        ds = read_dataset(view.path)
    except HeaderProblem as exc:
        raise DecodeError(decode_message(view.path, "", str(exc), "")) from None
    except (OSError, ValueError, EOFError, KeyError, TypeError, IndexError) as exc:
        raise DecodeError(decode_message(view.path, view.transfer_syntax_uid,
                                         f"unreadable DICOM file ({first_line(exc)})",
                                         ADVICE_DAMAGED)) from None
    uid = syntax_uid(ds)
    if native_only and uid not in IN_PROCESS_SYNTAXES:
        raise NeedsIsolation(decode_message(view.path, uid, "compressed data may only be "
                                            "decoded in a worker process", ""))
    check_pixel_header(ds, view.path, uid)
    notes: list[str] = []
    arr, decoder, itk_rescaled = _decode_first_frame(ds, view.path, uid, stage)
    stage("building display tables")
    lut = _lut_info(ds, notes)
    rgb = None
    if arr.ndim == 2 and lut.photometric == "PALETTE COLOR":
        arr = palette_to_rgb(arr, ds)
    if arr.ndim == 3:
        rgb = rgb_to_uint8(arr, _int(ds, "BitsStored"))
        arr = luminance(rgb)
        lut = LutInfo(photometric="RGB")
        modality_fn = _identity
    elif itk_rescaled:
        lut.rescale_slope, lut.rescale_intercept, lut.modality_lut = 1.0, 0.0, None
        modality_fn = _identity
    else:
        modality_fn = _modality_function(ds, lut)
    # colour: index over the channels too, so one table maps R, G, B and the luma
    values = build_value_index(rgb if rgb is not None else arr, modality_fn)
    return DecodedImage(arr, lut, values, rgb=rgb, view=view, decoder=decoder, notes=notes)


def _int(ds, keyword: str) -> int:
    try:
        return int(ds.get(keyword, 0) or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def _pydicom_plugins(uid: str) -> str:
    """``"pydicom (pylibjpeg, pydicom)"``: the decoder and its plugins for ``uid``."""
    if uid in NATIVE_SYNTAXES:
        return "pydicom (numpy)"
    try:
        from pydicom.pixels import get_decoder

        plugins = ", ".join(get_decoder(uid).available_plugins)
    except (ValueError, NotImplementedError, AttributeError):
        plugins = ""
    return f"pydicom ({plugins})" if plugins else "pydicom"


def _decode_first_frame(ds, path: Path, uid: str,
                        stage: Callable[[str], None]) -> tuple[np.ndarray, str, bool]:
    """First frame via pydicom, else (compressed only) SimpleITK: (array, decoder, itk_rescaled)."""
    import pydicom.pixels

    decoder = _pydicom_plugins(uid)
    stage(decoder)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            arr = np.asarray(pydicom.pixels.pixel_array(ds, index=0))
        _check_decoded_size(caught, path, uid, decoder)
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return arr, "pydicom", False
    except DecodeError:
        raise
    except _PASS_THROUGH:
        raise
    except BaseException as exc:  # noqa: BLE001 - plugins raise anything, pyo3 panics included
        first_error = exc
    if uid in NATIVE_SYNTAXES:
        raise DecodeError(decode_message(path, uid, f"{decoder} cannot read the pixels "
                                         f"({first_line(first_error)})"))
    if not gdcm_fallback_installed():
        raise DecodeError(decode_message(
            path, uid, f"the fallback decoder SimpleITK is not installed ({GDCM_INSTALL}); "
            f"pydicom: {first_line(first_error, 40)}", ""))
    log.info("pydicom could not decode %s (%s); trying SimpleITK", path.name, first_error)
    stage("SimpleITK (GDCM)")
    try:
        arr = _sitk_first_frame(path)
    except Exception as exc:  # noqa: BLE001 - ITK raises plain RuntimeError/others
        raise DecodeError(decode_message(
            path, uid, f"no decoder could read the pixels; pydicom: {first_line(first_error, 90)}"
            f"; SimpleITK: {first_line(exc, 60)}")) from exc
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    if arr.shape[:2] != (rows, cols):
        raise DecodeError(decode_message(path, uid, f"SimpleITK returned {arr.shape[0]} x "
                                         f"{arr.shape[1]} pixels but the header says {rows} x "
                                         f"{cols}; pydicom: {first_line(first_error, 90)}"))
    return arr, "SimpleITK", True


def _check_decoded_size(caught, path: Path, uid: str, decoder: str) -> None:
    """Refuse frames whose decoded size disagrees with the header (pydicom only warns)."""
    for warning in caught:
        match = _SIZE_WARNING.search(str(warning.message))
        if match and int(match.group(1)) > int(match.group(2)) + 1:
            raise DecodeError(decode_message(
                path, uid, f"{decoder}: the data decode to {int(match.group(1)):,} bytes but "
                f"the header (Rows, Columns, Bits) needs {int(match.group(2)):,}",
                "the header does not match the pixel data; the file is damaged"))


def gdcm_fallback_installed() -> bool:
    """True when SimpleITK (the optional ``[gdcm]`` extra, 264 MB) can be imported."""
    return importlib.util.find_spec("SimpleITK") is not None


def _sitk_first_frame(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        arr = arr[0]
    return arr


def _finite(ds, keyword: str, default: float, notes: list[str]) -> float:
    """Float value of ``keyword``; non-finite or unreadable values become ``default`` + a note."""
    raw = ds.get(keyword, None)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value) or (keyword == "RescaleSlope" and value == 0):
        notes.append(clip(f"{keyword} {str(raw)[:40]} ignored (not a usable number); "
                          f"{default:g} used", 120))
        return default
    return value


def _lut_info(ds, notes: list[str]) -> LutInfo:
    from viewer.io.dicom import read_lut_sequence, window_notes, window_presets

    luts = [lut for item in ds.get("VOILUTSequence", []) or []
            if (lut := read_lut_sequence(item)) is not None]
    mlut_seq = ds.get("ModalityLUTSequence") or []
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper().strip()
    shape = str(ds.get("PresentationLUTShape", "IDENTITY") or "IDENTITY").upper().strip()
    notes.extend(window_notes(ds))
    return LutInfo(
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper().strip(),
        windows=window_presets(ds),
        voi_function=function if function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR",
        voi_luts=luts,
        presentation_shape=shape if shape in ("IDENTITY", "INVERSE") else "IDENTITY",
        rescale_slope=_finite(ds, "RescaleSlope", 1.0, notes),
        rescale_intercept=_finite(ds, "RescaleIntercept", 0.0, notes),
        modality_lut=read_lut_sequence(mlut_seq[0]) if mlut_seq else None,
    )


def _modality_function(ds, lut: LutInfo):
    """stored -> modality values: the Modality LUT Sequence (pydicom) or checked slope/intercept."""
    if lut.modality_lut is not None:
        import pydicom.pixels

        def apply_lut(values: np.ndarray) -> np.ndarray:
            return np.asarray(pydicom.pixels.apply_modality_lut(values, ds), dtype=np.float32)

        return apply_lut
    slope, intercept = lut.rescale_slope, lut.rescale_intercept

    def apply_linear(values: np.ndarray) -> np.ndarray:
        out = values.astype(np.float64) * slope + intercept
        return out.astype(np.float32)

    return apply_linear
