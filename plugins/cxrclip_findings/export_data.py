"""Plain data handed to the exporters (JSON and DICOM SR).

The panels fill these from the viewer's `Study` and the engine's results; the
exporters only read them, so they are tested without Qt, torch or files.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cxrclip.zero_shot import ViewOOD  # the engine's verdict, exported as it is


class SRExportError(ValueError):
    """The study cannot be exported as SR; the message says why and what to do.

    Defined here, not in `export_sr`, so that the plugin can raise and catch it
    without importing highdicom (which `export_sr` needs) at start-up."""


@dataclass(frozen=True)
class PatientInfo:
    """Patient identifiers: exported only when the user asks for them."""

    name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    age: str = ""


@dataclass(frozen=True)
class ViewRef:
    """One view of the study as the export refers to it."""

    view_id: str
    label: str = ""
    modality: str = ""
    view_position: str = ""
    laterality: str = ""
    source: str = "dicom"  # "dicom" | "image"
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    series_instance_uid: str = ""
    file_name: str = ""


@dataclass(frozen=True)
class StudyRef:
    """The study the results belong to."""

    study_instance_uid: str
    views: tuple[ViewRef, ...]
    study_date: str = ""
    study_description: str = ""
    accession_number: str = ""
    patient: PatientInfo = field(default_factory=PatientInfo)


@dataclass(frozen=True)
class ViewScore:
    """Score of one prompt or finding on one view."""

    view_id: str
    probability: float
    similarity: float


@dataclass(frozen=True)
class ScoreEntry:
    """Study-level score of a finding or prompt, with its per-view breakdown.

    For findings of a calibrated model ``probability`` is calibrated, ``raw_probability``
    the model's own, ``positive`` whether it reaches the finding's ``operating_point``."""

    name: str
    probability: float
    similarity: float
    negative: str = ""
    views: tuple[ViewScore, ...] = ()
    raw_probability: float | None = None
    calibrated: bool = False
    positive: bool | None = None
    operating_point: float | None = None
    unfamiliar: bool = False  # prompts: wording far from anything the model was trained on


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced the scores."""

    name: str
    model_id: str
    backbone: str = ""
    device: str = ""
    synthetic: bool = False
    intended_use: str = ""
    # finding -> probability threshold from the model's calibration; empty: uncalibrated
    operating_points: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def calibrated(self) -> bool:
        """True when the model folder gives operating points."""
        return bool(self.operating_points)


@dataclass(frozen=True)
class ExportContent:
    """Everything one export holds."""

    study: StudyRef
    model: ModelInfo
    findings: tuple[ScoreEntry, ...] = ()
    prompts: tuple[ScoreEntry, ...] = ()
    draft: str = ""
    contradictions: tuple[str, ...] = ()
    ood: tuple[ViewOOD, ...] = ()  # empty: the model has no OOD statistics

    @property
    def out_of_distribution(self) -> bool:
        """True when any view is outside the model's experience."""
        return any(v.flag for v in self.ood)
