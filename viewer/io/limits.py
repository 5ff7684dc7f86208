"""Limits checked before any pixel is decoded, and the limits of a decode worker.

A header can claim anything; decoders trust it and allocate what it says.
``check_pixel_header`` compares the header with the data that are really
there and with a pixel budget, so a damaged or hostile file is refused in
microseconds instead of being decoded into gigabytes or a fabricated image.
The worker limits (time, address space) catch what no header check can.
"""
from __future__ import annotations

import math
import os

from viewer.io.messages import NATIVE_SYNTAXES, DecodeError, decode_message

# One frame may hold at most this many samples (rows x columns x samples per pixel):
# 2**27 = 134 M, e.g. 11,585 x 11,585 grey or 6,688 x 6,688 RGB; chest radiographs
# are below 20 M. At 8 bytes a sample (64-bit data) that is 1 GiB.
MAX_FRAME_SAMPLES = 1 << 27
SUPPORTED_BITS_ALLOCATED = (1, 8, 16, 32, 64)
SUPPORTED_SAMPLES = (1, 3, 4)
# A decode worker is stopped after this many seconds of wall time per file.
DECODE_SECONDS = float(os.environ.get("CXRCLIP_DECODE_SECONDS", "30"))
# Address-space limit (RLIMIT_AS) of a decode worker process.
WORKER_MEMORY_BYTES = int(os.environ.get("CXRCLIP_DECODE_MEMORY", str(6 << 30)))
PIXEL_TAGS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData",
              0x7FE00009: "DoubleFloatPixelData"}


def _int(ds, keyword: str, default: int | None = None) -> int | None:
    value = ds.get(keyword, default)
    try:
        return default if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def pixel_element(ds):
    """The pixel data element of ``ds`` (Pixel, Float or Double Float Pixel Data) or None."""
    for tag in PIXEL_TAGS:
        if tag in ds:
            return ds[tag]
    return None


def frame_geometry(ds, path, uid: str) -> tuple[int, int, int, int, int]:
    """(rows, columns, samples, bits allocated, frames), validated; raises DecodeError."""
    def fail(what: str, advice: str | None = None) -> DecodeError:
        return DecodeError(decode_message(path, uid, what, advice))

    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    if not rows or not cols or rows < 0 or cols < 0:
        raise fail(f"Rows/Columns {ds.get('Rows')!s:.20}/{ds.get('Columns')!s:.20} are not "
                   "positive numbers")
    bits = _int(ds, "BitsAllocated")
    if bits not in SUPPORTED_BITS_ALLOCATED:
        raise fail(f"Bits Allocated {ds.get('BitsAllocated')!s:.20} is not supported "
                   "(1, 8, 16, 32 or 64)", "the header is damaged or the format is unusual")
    samples = _int(ds, "SamplesPerPixel", 1)
    if samples not in SUPPORTED_SAMPLES:
        raise fail(f"Samples per Pixel {ds.get('SamplesPerPixel')!s:.20} is not 1, 3 or 4",
                   "the header is damaged")
    frames = _int(ds, "NumberOfFrames", 1) or 1
    if frames < 1:
        raise fail(f"Number of Frames {frames} is not positive", "the header is damaged")
    if rows * cols * samples > MAX_FRAME_SAMPLES:
        raise fail(f"header claims {rows} x {cols} x {samples} samples per frame, above the "
                   f"limit of {MAX_FRAME_SAMPLES:,}", "the header is probably damaged")
    return rows, cols, samples, bits, frames


def expected_native_bytes(ds, rows: int, cols: int, samples: int, bits: int,
                          frames: int) -> int:
    """Bytes that uncompressed pixel data of this geometry need (without the pad byte)."""
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    per_pixel = 2 if samples == 3 and photometric == "YBR_FULL_422" else samples
    total_samples = rows * cols * per_pixel * frames
    return math.ceil(total_samples / 8) if bits == 1 else total_samples * (bits // 8)


def check_pixel_header(ds, path, uid: str) -> None:
    """Refuse pixel data that the header cannot describe honestly; raises DecodeError.

    Checks (all before decoding): a pixel element exists, the geometry is
    sane and within `MAX_FRAME_SAMPLES`, and for native syntaxes the data
    hold at least as many bytes as the header says (nothing is invented
    from truncated data).
    """
    element = pixel_element(ds)
    if element is None or element.value is None or len(element.value) == 0:
        raise DecodeError(decode_message(path, uid, "no readable pixel data element",
                                         "the file may be truncated or not an image"))
    rows, cols, samples, bits, frames = frame_geometry(ds, path, uid)
    if uid == RLE_LOSSLESS:
        check_rle_first_frame(ds, path, uid, rows, cols, samples, bits, frames)
    if uid not in NATIVE_SYNTAXES:
        return
    expected = expected_native_bytes(ds, rows, cols, samples, bits, frames)
    present = len(element.value)
    if present < expected:
        raise DecodeError(decode_message(
            path, uid, f"pixel data hold {present:,} bytes but the header needs {expected:,} "
            f"({rows} x {cols} x {samples} x {frames} frame(s) at {bits} bits)"))


RLE_LOSSLESS = "1.2.840.10008.1.2.5"


def check_rle_first_frame(ds, path, uid: str, rows: int, cols: int, samples: int,
                          bits: int, frames: int) -> None:
    """RLE (PS3.5 Annex G): the first frame's segment table must fit the header.

    One segment per byte plane (samples x bytes per sample), each decoding
    to rows x columns bytes; a compressed segment can be at most about
    129/128 of that (we allow twice plus a little) and not empty. A header
    with Rows/Columns smaller than the data would otherwise make decoders
    cut the data silently (or panic).
    """
    import struct

    from pydicom.encaps import generate_frames

    def fail(what: str) -> DecodeError:
        return DecodeError(decode_message(path, uid, what,
                                          "the header does not match the pixel data; "
                                          "the file is damaged"))

    try:
        frame = next(generate_frames(pixel_element(ds).value, number_of_frames=frames))
    except (StopIteration, ValueError, KeyError, struct.error, TypeError) as exc:
        raise fail(f"cannot find the first RLE frame ({type(exc).__name__})") from None
    if len(frame) < 64:
        raise fail(f"RLE frame of {len(frame)} bytes has no 64-byte segment table")
    count, *offsets = struct.unpack("<16I", frame[:64])
    expected = samples * max(1, bits // 8)
    if count != expected:
        raise fail(f"RLE frame has {count} segments, the header needs {expected}")
    starts = offsets[:count] + [len(frame)]
    plane = math.ceil(rows * cols / 8) if bits == 1 else rows * cols
    for index in range(count):
        length = starts[index + 1] - starts[index]
        if starts[index] < 64 or length <= 0:
            raise fail(f"RLE segment {index + 1} has a bad offset ({starts[index]})")
        if length > 2 * plane + 64:
            raise fail(f"RLE segment {index + 1} holds {length:,} bytes, far more than the "
                       f"{plane:,} bytes of one {rows} x {cols} plane")
