"""View positions of Open-I (IU X-ray) images, from the DICOM headers the dataset publishes.

The XML reports say nothing about views, and the first image of a study is a
lateral in about 130 of the 3,955 studies. The views come from, in order:

1. ``nlmcxr_dicom_metadata.csv(.gz)`` under ``--root``: the header table of
   Open-I's DICOM release (``NLMCXR_dcm.tgz``) as published with torchxrayvision,
   one row per image (``imageid`` = ``CXR<study>_IM-xxxx-yyyy``, ``View Position``,
   ``Patient Orientation``);
2. else the DICOM files themselves (``NLMCXR_dcm/**/*.dcm``, headers only);
3. else nothing: the view stays null.

Per image, ``View Position`` (0018,5101) is used when present (PA, AP, LL, RL,
LATERAL, ...); else the row direction of ``Patient Orientation`` (0020,0020):
L/R → ``FRONTAL``, A/P → ``LATERAL``; else null (about a third of the images
carry neither, and evaluation then takes the first image not known to be a lateral).
"""
from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

from training.data.adapters.common import check_columns, read_csv

METADATA_NAMES = ("nlmcxr_dicom_metadata.csv.gz", "nlmcxr_dicom_metadata.csv")
DICOM_DIRS = ("NLMCXR_dcm", "dicom", "dcm")
_IMAGE_NUMBER = re.compile(r"^(CXR\d+)_\d+_")


def metadata_key(image_id: str) -> str:
    """Key of an XML ``parentImage`` id in the DICOM tables: ``CXR1_1_IM-0001-3001`` → ``CXR1_IM-0001-3001``."""
    return _IMAGE_NUMBER.sub(r"\1_", image_id)


def _orientation_row(value: object) -> str:
    """First element of Patient Orientation, given as "['L', 'F']", "L\\F" or a sequence."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return ""
        else:
            value = text.split("\\")
    items = list(value) if isinstance(value, Iterable) else []
    return str(items[0]).strip().upper() if items else ""


def view_from_header(view_position: object, orientation: object) -> str | None:
    """View of one image from its View Position, else its Patient Orientation, else None."""
    view = " ".join(str(view_position or "").split()).upper()
    if view:
        return view
    row = _orientation_row(orientation or "")
    if row[:1] in ("L", "R"):
        return "FRONTAL"
    if row[:1] in ("A", "P"):
        return "LATERAL"
    return None


def _from_table(path: Path) -> dict[str, str | None]:
    views: dict[str, str | None] = {}
    for i, row in enumerate(read_csv(path)):
        if i == 0:
            check_columns(path, row, ["imageid", "View Position", "Patient Orientation"])
        views[row["imageid"]] = view_from_header(row["View Position"], row["Patient Orientation"])
    return views


def _from_dicoms(folder: Path) -> dict[str, str | None]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    views: dict[str, str | None] = {}
    for file in sorted(folder.rglob("*.dcm")):
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True,
                                 specific_tags=["ViewPosition", "PatientOrientation"])
        except (InvalidDicomError, OSError):
            continue
        views[f"CXR{file.stem}"] = view_from_header(ds.get("ViewPosition"), ds.get("PatientOrientation"))
    return views


def read_views(root: Path) -> tuple[dict[str, str | None], str | None]:
    """(image key → view, the source used) for an Open-I root; ({}, None) without a source."""
    for name in METADATA_NAMES:
        if (root / name).is_file():
            return _from_table(root / name), str(root / name)
    for name in DICOM_DIRS:
        if (root / name).is_dir():
            return _from_dicoms(root / name), str(root / name)
    return {}, None
