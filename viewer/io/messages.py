"""User-facing decode messages: short, naming the file (not its folder), the syntax and a fix.

Every reason shown in the Problems panel goes through `clip`, so no header
value or decoder traceback can make a reason longer than `MAX_REASON`.
"""
from __future__ import annotations

from pathlib import Path

MAX_REASON = 300
_ELLIPSIS = "…"

# Transfer syntaxes whose pixel data are not compressed (pydicom's numpy path reads them).
NATIVE_SYNTAXES = frozenset({
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",  # deflated: the data set is zlib-compressed, pixels are native
})

# Packages that decode each compressed transfer syntax (for "install ..." advice).
SYNTAX_PACKAGES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg or Pillow",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg or Pillow",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls or pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.81": "pyjpegls or pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg or Pillow",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg or Pillow",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg>=2.2",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg>=2.2",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg>=2.2",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle (or pydicom's own RLE decoder)",
}

ADVICE_DAMAGED = "the file is damaged or truncated; export it again from the source"
ADVICE_CONVERT = "convert it to an uncompressed transfer syntax (e.g. dcmdjpeg or gdcmconv)"


class DecodeError(RuntimeError):
    """Pixels of a file could not be decoded; the message says why and what to do."""


def clip(text: str, limit: int = MAX_REASON) -> str:
    """``text`` on at most two lines and ``limit`` characters (ends with … when cut)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    flat = "\n".join(lines[:2])
    return flat if len(flat) <= limit else flat[:limit - len(_ELLIPSIS)].rstrip() + _ELLIPSIS


def first_line(exc: BaseException, limit: int = 120) -> str:
    """``"ValueError: first line of the message"``, clipped (decoder errors can be huge)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    out = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return clip(out, limit)


def syntax_uid(ds) -> str:
    """Transfer Syntax UID of ``ds`` ('' when missing)."""
    return str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")


def syntax_label(uid: str) -> str:
    """``"JPEG 2000 Image Compression (Lossless Only) (1.2.840.10008.1.2.4.90)"``."""
    if not uid:
        return "unknown transfer syntax"
    from pydicom.uid import UID

    name = UID(uid).name if len(uid) <= 64 else ""
    return clip(f"{name} ({uid})" if name and name != uid else uid, 100)


def advice_for(uid: str) -> str:
    """What to do about a file of this syntax that did not decode."""
    if uid in NATIVE_SYNTAXES:
        return ADVICE_DAMAGED
    if uid in SYNTAX_PACKAGES:
        return (f"decodable with {SYNTAX_PACKAGES[uid]} if installed; "
                "otherwise the compressed data are damaged")
    return ADVICE_CONVERT


def decode_message(path: Path | str, uid: str, what: str, advice: str | None = None) -> str:
    """``"<name>: <what> (transfer syntax <label>); <advice>"``, at most `MAX_REASON` chars."""
    name = Path(str(path)).name
    advice = advice_for(uid) if advice is None else advice
    head = f"{clip(name, 80)}: {clip(what, 160)} ({syntax_label(uid)})"
    return clip(f"{head}. {advice[:1].upper()}{advice[1:]}." if advice else head)
