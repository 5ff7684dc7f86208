"""Guess a file's format from its first bytes, cheaply and without raising."""
from __future__ import annotations

import struct
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Groups a DICOM file without preamble plausibly starts with (meta, identifying, patient).
_FIRST_GROUPS = (0x0002, 0x0008, 0x0010)
_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
        b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST",
        b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV"}


def sniff_bytes(head: bytes) -> str | None:
    """Classify the first 132+ bytes of a file.

    Returns ``"dicom"`` (preamble + ``DICM``), ``"dicom-raw"`` (no preamble
    but the bytes parse as a little-endian data element of group 0002/0008/0010,
    so reading with ``force=True`` is safe), ``"png"``, ``"jpeg"`` or None.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if len(head) >= 8:
        group, _element = struct.unpack("<HH", head[:4])
        if group in _FIRST_GROUPS:
            if head[4:6] in _VRS:  # explicit VR
                return "dicom-raw"
            length = struct.unpack("<I", head[4:8])[0]
            if length < 1 << 16:  # implicit VR with a sane first length
                return "dicom-raw"
    return None


def sniff(path: str | Path) -> str | None:
    """``sniff_bytes`` of the file's head; None when unreadable."""
    try:
        with open(path, "rb") as handle:
            return sniff_bytes(handle.read(132))
    except OSError:
        return None
