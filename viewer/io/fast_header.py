"""Fast header read for the folder scan: raw elements, converted only when needed.

``pydicom.dcmread`` builds a full Dataset and converts (and validates) every
value it is asked for; for a folder of thousands of files that is most of the
scan time. Here pydicom's ``data_element_generator`` walks the elements, only
the tags the scan needs are kept, and their values are decoded directly.
The fast path covers the common case (preamble present, little-endian
explicit or implicit VR, no character-set surprises the scan cares about);
``read_header_fast`` returns None otherwise and the caller uses dcmread.
"""
from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
                         "UI", "UR", "UT"})
_LATIN1_CHARSETS = frozenset({"", "ISO_IR 100", "ISO_IR 6", "ISO 2022 IR 6"})
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_UNPACK = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}


class HeaderValues:
    """The few header values the scan reads, with a ``Dataset``-like ``get``."""

    def __init__(self, values: dict[str, Any], file_meta: SimpleNamespace) -> None:
        self._values = values
        self.file_meta = file_meta

    def get(self, keyword: str, default: Any = None) -> Any:
        return self._values.get(keyword, default)

    def __contains__(self, keyword: object) -> bool:
        return keyword in self._values


def _stop_after_meta(tag, _vr, _length) -> bool:
    return tag >> 16 != 0x0002


def _stop_at_pixels(tag, _vr, _length) -> bool:
    return tag in _PIXEL_TAGS or tag > 0x7FE00010


def read_header_fast(handle, keywords: tuple[str, ...]) -> HeaderValues | None:
    """Header values of ``keywords`` from an open file, or None if the fast path does not apply.

    On success the file position is at the pixel data element (or end of file).
    """
    from pydicom.filereader import data_element_generator

    handle.seek(128)
    if handle.read(4) != b"DICM":
        return None
    meta = {el.tag: el for el in data_element_generator(handle, False, True, _stop_after_meta)}
    syntax = _decode(meta.get(0x00020010), "UI")
    if not syntax or syntax in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        return None
    wanted = {tag_for_keyword(k): k for k in keywords}
    implicit = syntax == "1.2.840.10008.1.2"
    values: dict[str, Any] = {}
    for element in data_element_generator(handle, implicit, True, _stop_at_pixels,
                                          specific_tags=list(wanted)):
        keyword = wanted.get(element.tag)
        if keyword is None:
            continue
        values[keyword] = _convert(element, implicit)
    if str(values.get("SpecificCharacterSet") or "") not in _LATIN1_CHARSETS:
        return None  # names in other character sets: let pydicom decode them
    file_meta = SimpleNamespace(TransferSyntaxUID=UID(syntax),
                                MediaStorageSOPClassUID=_decode(meta.get(0x00020002), "UI"))
    return HeaderValues(values, file_meta)


def _convert(element, implicit: bool) -> Any:
    """Value of a raw element: str/float/int (or list when multi-valued), Sequence for SQ."""
    from pydicom.dataelem import DataElement, convert_raw_data_element

    if isinstance(element, DataElement):  # undefined-length SQ, already parsed
        return element.value
    vr = element.VR
    if implicit or not vr or vr == "UN":  # UN: the explicit file did not know the VR
        vr = dictionary_VR(element.tag)
    if vr == "SQ":
        return convert_raw_data_element(element).value
    return _decode(element, vr)


def _decode(element, vr: str) -> Any:
    if element is None or element.value is None:
        return None
    raw = element.value
    if vr in _UNPACK:
        code = _UNPACK[vr]
        count = len(raw) // struct.calcsize(code)
        numbers = struct.unpack(f"<{count}{code}", raw[: count * struct.calcsize(code)])
        return numbers[0] if count == 1 else list(numbers)
    text = raw.decode("latin-1").rstrip("\x00 ").lstrip()
    if vr in ("DS", "IS"):
        parts = [p.strip() for p in text.split("\\") if p.strip()]
        cast = float if vr == "DS" else int
        try:
            numbers = [cast(p) for p in parts]
        except ValueError:
            return text
        return numbers[0] if len(numbers) == 1 else (numbers or None)
    if vr in _STRING_VRS and "\\" in text and vr not in ("LT", "ST", "UT"):
        return [p.strip() for p in text.split("\\")]
    return text
