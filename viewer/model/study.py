"""Patient -> Study -> Series -> View tree built from file headers.

The tree is pure data (no pixels): ``viewer.io.scan`` fills it from DICOM
headers and PNG/JPEG paths, ``viewer.io.decode`` loads pixels of one ``View``
on demand. Views of a study come back in reading order: frontal (PA/AP)
before lateral, so a two-view chest study opens side by side as a reader
expects it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FRONTAL_CODES = ("PA", "AP")
LATERAL_CODES = ("LAT", "LL", "RL", "LATERAL", "RLD", "LLD")
_ORIENTATION_RANK = {"frontal": 0, "lateral": 1, "unknown": 2}


@dataclass(frozen=True)
class WindowPreset:
    """One window (VOI) setting: centre, width and a human label."""

    center: float
    width: float
    explanation: str = ""


def _words(text: str) -> list[str]:
    cleaned = "".join(ch if ch.isalnum() else " " for ch in text.upper())
    return cleaned.split()


def classify_orientation(view_position: str, view_code: str = "",
                         series_description: str = "") -> str:
    """Return ``"frontal"``, ``"lateral"`` or ``"unknown"`` for a chest view.

    Order of evidence: View Position (0018,5101), then the View Code Sequence
    meaning, then words in the Series Description ("PA", "AP", "LAT", ...).
    """
    position = view_position.strip().upper()
    if position in FRONTAL_CODES:
        return "frontal"
    if position in LATERAL_CODES:
        return "lateral"
    for text in (view_code, series_description):
        words = _words(text)
        if any(w in LATERAL_CODES or w.startswith("LATERAL") for w in words):
            return "lateral"
        if any(w in FRONTAL_CODES or w in ("FRONTAL", "POSTERO", "ANTERO") for w in words):
            return "frontal"
    return "unknown"


@dataclass
class View:
    """One image (first frame of one SOP instance, or one PNG/JPEG file)."""

    view_id: str
    path: Path
    source: str = "dicom"  # "dicom" | "image"
    modality: str = ""
    view_position: str = ""
    laterality: str = ""
    series_description: str = ""
    rows: int = 0
    columns: int = 0
    frames: int = 1
    photometric: str = ""
    bits_stored: int = 0
    transfer_syntax_uid: str = ""
    pixel_spacing: tuple[float, float] | None = None
    window_presets: list[WindowPreset] = field(default_factory=list)
    study_uid: str = ""
    series_uid: str = ""
    # additions beyond docs/architecture.md (all optional)
    patient_id: str = ""
    instance_number: int | None = None
    view_code: str = ""
    pixel_spacing_source: str = ""  # "PixelSpacing" | "ImagerPixelSpacing" | ""
    samples_per_pixel: int = 1

    @property
    def orientation(self) -> str:
        """``"frontal"``, ``"lateral"`` or ``"unknown"`` (see classify_orientation)."""
        return classify_orientation(self.view_position, self.view_code, self.series_description)

    @property
    def is_frontal(self) -> bool:
        return self.orientation == "frontal"

    @property
    def is_lateral(self) -> bool:
        return self.orientation == "lateral"

    @property
    def position_label(self) -> str:
        """View position and laterality, e.g. ``"PA"``, ``"LAT L"``, ``"Frontal"``; "" if unknown."""
        parts = [self.view_position.strip().upper() or
                 {"frontal": "Frontal", "lateral": "Lateral"}.get(self.orientation, "")]
        laterality = self.laterality.strip().upper()
        if laterality and laterality != "U":  # "U" (unpaired/unknown) adds nothing for a chest
            parts.append(laterality)
        return " ".join(p for p in parts if p)

    @property
    def display_label(self) -> str:
        """Short label free of identifiers, e.g. ``"PA"``, ``"LAT L"`` or ``"Image 2"``.

        Never a file name (file names often carry names or IDs; plugins show
        this label whatever the Hide-PHI setting). `viewer.model.phi.view_label`
        adds the file name while PHI is shown.
        """
        if self.position_label:
            return self.position_label
        return f"Image {self.instance_number}" if self.instance_number is not None else "Image"


@dataclass
class Series:
    """Views sharing one SeriesInstanceUID (one folder for PNG/JPEG input)."""

    series_uid: str
    number: int | None = None
    description: str = ""
    modality: str = ""
    views: list[View] = field(default_factory=list)


@dataclass
class Study:
    """One imaging study; ``views()`` lists its images in reading order."""

    study_uid: str
    patient_id: str = ""
    date: str = ""  # YYYYMMDD as in DICOM, or ""
    time: str = ""
    description: str = ""
    accession_number: str = ""
    series: list[Series] = field(default_factory=list)
    patient: "Patient | None" = field(default=None, repr=False, compare=False)

    def views(self) -> list[View]:
        """All views, frontal first, then lateral, then unknown; stable otherwise."""
        ordered: list[tuple[tuple, View]] = []
        for s_index, series in enumerate(self.series):
            for v_index, view in enumerate(series.views):
                key = (_ORIENTATION_RANK[view.orientation],
                       series.number if series.number is not None else 1 << 30, s_index,
                       view.instance_number if view.instance_number is not None else 1 << 30,
                       v_index)
                ordered.append((key, view))
        ordered.sort(key=lambda item: item[0])
        return [view for _, view in ordered]

    def find_series(self, series_uid: str) -> Series | None:
        return next((s for s in self.series if s.series_uid == series_uid), None)

    @property
    def display_label(self) -> str:
        """E.g. ``"2019-03-01 CHEST PA AND LAT (2 views)"``."""
        date = format_dicom_date(self.date)
        text = " ".join(p for p in (date, self.description.strip()) if p) or self.study_uid
        count = sum(len(s.views) for s in self.series)
        return f"{text} ({count} view{'s' if count != 1 else ''})"


@dataclass
class Patient:
    """One patient with overlay fields (name, sex, birth date, age)."""

    patient_id: str
    name: str = ""
    sex: str = ""
    birth_date: str = ""
    age: str = ""  # DICOM AS, e.g. "065Y", or ""
    studies: list[Study] = field(default_factory=list)

    @property
    def display_label(self) -> str:
        bits = [self.name.replace("^", " ").strip() or self.patient_id]
        extra = " ".join(p for p in (self.sex.strip(), format_age(self.age)) if p)
        if extra:
            bits.append(extra)
        return ", ".join(bits)


def format_dicom_date(value: str) -> str:
    """``"20190301"`` -> ``"2019-03-01"``; anything else unchanged."""
    value = value.strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def format_age(value: str) -> str:
    """DICOM Age String ``"065Y"`` -> ``"65Y"``; empty stays empty."""
    value = value.strip()
    if len(value) == 4 and value[:3].isdigit():
        return f"{int(value[:3])}{value[3]}"
    return value


class StudyTree:
    """Groups views by PatientID / StudyInstanceUID / SeriesInstanceUID / view_id.

    ``add`` takes a view plus prototype ``Patient``/``Study``/``Series``
    objects carrying header fields; existing nodes are reused and their empty
    fields filled, duplicates of a ``view_id`` are ignored (returns False).
    """

    def __init__(self) -> None:
        self.patients: list[Patient] = []
        self._patients: dict[str, Patient] = {}
        self._studies: dict[str, Study] = {}
        self._views: dict[str, View] = {}

    def add(self, view: View, patient: Patient | None = None, study: Study | None = None,
            series: Series | None = None) -> bool:
        """Insert ``view``; returns False when its ``view_id`` is already present."""
        if view.view_id in self._views:
            return False
        patient_node = self._patient_node(patient or Patient(view.patient_id))
        study_node = self._study_node(study or Study(view.study_uid), patient_node)
        series_node = study_node.find_series(view.series_uid)
        if series_node is None:
            proto = series or Series(view.series_uid)
            series_node = Series(view.series_uid, proto.number, proto.description,
                                 proto.modality or view.modality)
            study_node.series.append(series_node)
        series_node.views.append(view)
        self._views[view.view_id] = view
        return True

    def _patient_node(self, proto: Patient) -> Patient:
        node = self._patients.get(proto.patient_id)
        if node is None:
            node = Patient(proto.patient_id, proto.name, proto.sex, proto.birth_date, proto.age)
            self._patients[proto.patient_id] = node
            self.patients.append(node)
        else:
            _fill_empty(node, proto, ("name", "sex", "birth_date", "age"))
        return node

    def _study_node(self, proto: Study, patient: Patient) -> Study:
        node = self._studies.get(proto.study_uid)
        if node is None:
            node = Study(proto.study_uid, patient.patient_id, proto.date, proto.time,
                         proto.description, proto.accession_number, patient=patient)
            self._studies[proto.study_uid] = node
            patient.studies.append(node)
        else:
            _fill_empty(node, proto, ("date", "time", "description", "accession_number"))
        return node

    def studies(self) -> list[Study]:
        """All studies, in the order they were first seen."""
        return list(self._studies.values())

    def study(self, study_uid: str) -> Study | None:
        return self._studies.get(study_uid)

    def view(self, view_id: str) -> View | None:
        return self._views.get(view_id)

    def views(self) -> list[View]:
        return list(self._views.values())

    def sort(self) -> None:
        """Sort patients by id and studies by date (oldest first) for stable display."""
        self.patients.sort(key=lambda p: p.patient_id)
        for patient in self.patients:
            patient.studies.sort(key=lambda s: (s.date or "99999999", s.time, s.study_uid))
            for study in patient.studies:
                study.series.sort(key=lambda s: (s.number if s.number is not None else 1 << 30,
                                                 s.series_uid))
        self._studies = {s.study_uid: s for p in self.patients for s in p.studies}

    def __len__(self) -> int:
        return len(self._views)

    def __bool__(self) -> bool:
        return bool(self._views)


def _fill_empty(node: object, proto: object, names: tuple[str, ...]) -> None:
    for name in names:
        if not getattr(node, name) and getattr(proto, name):
            setattr(node, name, getattr(proto, name))
