"""A DICOM dataset as plain rows for the tag browser (no Qt; runs in a worker).

Every element is formatted on its own: pydicom converts raw elements lazily
and raises while doing so on corrupt files (`NotImplementedError` for an
unknown VR, `BytesLengthException` for a value length that does not fit the
VR, ...). Such an element becomes one row reading ``<unreadable: reason>``
and the rest of the dataset is still listed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import UID

from viewer.model.phi import MASK, Redactor, is_identifying

MAX_VALUE_CHARS = 200
MAX_VALUES = 16
MAX_REASON_CHARS = 80
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
PIXEL_DATA = 0x7FE00010
# Values collected from these attributes are masked wherever else they appear.
NAME_KEYWORDS = frozenset({"PatientName", "OtherPatientNames", "PatientBirthName"})
SECRET_KEYWORDS = frozenset({"PatientID", "OtherPatientIDs", "AccessionNumber", "PatientBirthDate",
                             "MedicalRecordLocator", "AdmissionID"})


@dataclass
class TagRow:
    """One tree row: tag "(gggg,eeee)", keyword, VR, value text, children (sequence items)."""

    tag: str
    keyword: str
    vr: str
    value: str
    identifying: bool = False
    children: list[TagRow] = field(default_factory=list)

    def count(self) -> int:
        """This row and all rows below it."""
        return 1 + sum(child.count() for child in self.children)


def unreadable(exc: BaseException) -> str:
    """Short text for a value pydicom cannot convert."""
    reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[:MAX_REASON_CHARS] + "…"
    return f"<unreadable: {reason}>"


def value_text(value: object, vr: str, tag: int) -> str:
    """The value as one short line: binary data by size, long lists cut after 16 values."""
    if vr in BINARY_VRS or tag == PIXEL_DATA:
        size = len(value) if isinstance(value, (bytes, bytearray)) else "?"
        return f"<binary, {size} bytes>"
    if isinstance(value, (MultiValue, list, tuple)) and len(value) > MAX_VALUES:
        shown = ", ".join(str(v) for v in list(value)[:MAX_VALUES])
        return f"[{shown}, …] ({len(value)} values)"
    text = str(value)
    if vr == "UI" and isinstance(value, UID) and value.keyword:
        text = f"{text} ({value.name})"  # a registered UID: say what it is
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def dataset_rows(ds: Dataset) -> list[TagRow]:
    """Rows of ``ds`` (file meta first), sequences nested; never raises for one bad element."""
    rows: list[TagRow] = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        rows += _rows(meta)
    return rows + _rows(ds)


def _rows(ds: Dataset) -> list[TagRow]:
    try:
        tags = list(ds.keys())
    except Exception as exc:  # a dataset that cannot even list its tags  # noqa: BLE001
        return [TagRow("", "", "", unreadable(exc))]
    return [_element_row(ds, tag) for tag in tags]


def _element_row(ds: Dataset, tag: int) -> TagRow:
    tag = Tag(tag)
    tag_text = f"({tag.group:04X},{tag.element:04X})"
    try:
        elem = ds[tag]
        keyword, vr = elem.keyword or elem.name, str(elem.VR)
    except Exception as exc:  # pydicom failed converting the raw element  # noqa: BLE001
        vr = _raw_vr(ds, tag)
        # a damaged VR must not unmask a date or a name: judge by the dictionary's VR too
        ident = any(is_identifying(_keyword(tag), v, int(tag)) for v in (vr, _dictionary_vr(tag)))
        return TagRow(tag_text, _keyword(tag), vr, unreadable(exc), ident)
    try:
        if vr == "SQ":
            return TagRow(tag_text, keyword, vr, "", is_identifying(keyword, vr, int(tag)),
                          _items(elem.value))
        value = elem.value
        ident = is_identifying(elem.keyword, vr, int(tag), _uid_values(value) if vr == "UI" else None)
        return TagRow(tag_text, keyword, vr, value_text(value, vr, int(tag)), ident)
    except Exception as exc:  # formatting the value failed  # noqa: BLE001
        return TagRow(tag_text, keyword, vr, unreadable(exc), is_identifying(keyword, vr, int(tag)))


def _raw_vr(ds: Dataset, tag: Tag) -> str:
    """The VR as written in the file, without converting the element (which just failed)."""
    try:
        raw = ds.get_item(tag, keep_deferred=True)
    except Exception:  # noqa: BLE001 - the row already says the element is unreadable
        return ""
    return str(getattr(raw, "VR", "") or "")


def _dictionary_vr(tag: Tag) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag)
    except KeyError:  # private or unknown tag
        return ""


def _uid_values(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (MultiValue, list, tuple)) else [str(value)]


def _items(sequence: object) -> list[TagRow]:
    return [TagRow("", f"Item {index}", "", "", False, _rows(item))
            for index, item in enumerate(sequence, start=1)]


def _keyword(tag: Tag) -> str:
    from pydicom.datadict import keyword_for_tag

    try:
        return keyword_for_tag(tag) or ("Private tag" if tag.is_private else "Unknown tag")
    except Exception:  # noqa: BLE001 - the dictionary lookup never matters enough to fail
        return "Unknown tag"


def collect_secrets(rows: list[TagRow], redactor: Redactor) -> None:
    """Add the dataset's own identifiers (name, IDs, accession, birth date) to ``redactor``."""
    for row in rows:
        if not row.value.startswith("<"):
            if row.keyword in NAME_KEYWORDS:
                redactor.add_name(row.value)
            elif row.keyword in SECRET_KEYWORDS:
                redactor.add_texts([row.value])
        collect_secrets(row.children, redactor)


def shown_value(row: TagRow, hide_phi: bool, redactor: Redactor) -> str:
    """The value as displayed: masked when identifying, scrubbed of known identifiers."""
    if not hide_phi or not row.value:
        return row.value
    return MASK if row.identifying else redactor.scrub(row.value)
