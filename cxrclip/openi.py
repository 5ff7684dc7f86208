"""Open-I (IU X-ray) XML reports: the one reader, used by the sentence-bank builder and
by the training adapter.

A report is one XML file with ``<AbstractText Label="FINDINGS">`` / ``"IMPRESSION"``
(and other labels), ``<uId id="CXR1">`` and one ``<parentImage id="CXR1_1_IM-0001-3001">``
per image.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


class OpenIReportError(ValueError):
    """An Open-I XML file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class OpenIReport:
    """One report: its study id, non-empty sections by upper-case label, and image ids."""

    study_id: str
    sections: dict[str, str] = field(default_factory=dict)
    image_ids: list[str] = field(default_factory=list)


def _text(node: ET.Element) -> str:
    return " ".join("".join(node.itertext()).split())


def read_openi_report(path: Path) -> OpenIReport:
    """Parse one Open-I XML report; whitespace inside a section is collapsed to single spaces."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise OpenIReportError(f"{path}: not valid XML ({exc}); remove it or replace it "
                               "with the original Open-I report") from exc
    except OSError as exc:
        raise OpenIReportError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    sections: dict[str, str] = {}
    for node in root.iter("AbstractText"):
        label, text = node.get("Label", "").upper(), _text(node)
        if text and label not in sections:
            sections[label] = text
    uid = root.find(".//uId")
    study = uid.get("id") if uid is not None and uid.get("id") else path.stem
    images = [n.get("id") for n in root.iter("parentImage") if n.get("id")]
    return OpenIReport(study, sections, images)
