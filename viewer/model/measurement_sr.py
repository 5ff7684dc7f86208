"""Measurements as a DICOM SR measurement report (TID 1500, highdicom), no Qt.

One Planar ROI group (TID 1410) per measurement, referencing its image by SOP
Instance UID with the shape as SCOORD in that image's pixel coordinates (the
top-left corner of the first pixel is 0,0, as in the viewer):

- ruler: POLYLINE of 2 points, Length (SCT 410668003);
- angle: POLYLINE of 3 points, Angle (SCT 1483009) in degrees;
- rectangle: closed POLYLINE, ellipse: ELLIPSE (major then minor axis ends);
  Area (SCT 42798000), Mean, Standard Deviation, Minimum, Maximum of the
  modality values (UCUM "1", or "[hnsf'U]" for CT);
- CTR: POLYLINE through the 4 points (heart width, then thorax width: TID 1410
  holds one region per group), Width (SCT 103355008) of heart and thorax
  and the ratio under a private code (99CXRV, "Cardiothoracic ratio").

Lengths are in mm when the image is calibrated (the calibration source is
recorded as a method description in the tracking identifier) and in
"{pixels}" otherwise. Identifiers follow the other exports: without
``include_identifiers`` the patient and study attributes are emptied (PS3.15
Basic Profile, Retain UIDs Option: the SR must reference the images' UIDs).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewer.io.private_files import write_private_with
from viewer.model.calibration import Calibration
from viewer.model.deidentify import deidentify_sr, read_evidence
from viewer.model.measurements import Measurement, MeasurementResult, box
from viewer.model.study import View

PRIVATE_SCHEME = "99CXRV"


class MeasurementSRError(ValueError):
    """The measurements cannot be written as SR; the message says why and what to do."""


@dataclass(frozen=True)
class SRItem:
    """One measurement with what the SR needs: its numbers, calibration and image."""

    measurement: Measurement
    result: MeasurementResult
    calibration: Calibration
    view: View


def _codes():
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    return codes, CodedConcept


def _units(calibration: Calibration, value_unit: str):
    codes, concept = _codes()
    length = codes.UCUM.Millimeter if calibration.calibrated else concept("{pixels}", "UCUM", "pixels")
    area = codes.UCUM.SquareMillimeter if calibration.calibrated else \
        concept("{square pixels}", "UCUM", "square pixels")
    value = codes.UCUM.HounsfieldUnit if value_unit == "HU" else codes.UCUM.NoUnits
    return length, area, value


def _graphic(m: Measurement) -> tuple[str, np.ndarray]:
    """(graphic type, N x 2 column/row points) of a measurement's shape."""
    points = np.asarray(m.points, dtype=np.float64)
    if m.kind in ("ruler", "angle"):
        return "POLYLINE", points
    if m.kind == "ctr":  # one region per group: the heart and thorax widths as one polyline
        return "POLYLINE", points
    left, top, right, bottom = box(*m.points)
    if m.kind == "rect":
        return "POLYLINE", np.array([[left, top], [right, top], [right, bottom], [left, bottom],
                                     [left, top]])
    cx, cy = (left + right) / 2, (top + bottom) / 2
    horizontal = [[left, cy], [right, cy]]
    vertical = [[cx, top], [cx, bottom]]
    major, minor = (horizontal, vertical) if right - left >= bottom - top else (vertical, horizontal)
    return "ELLIPSE", np.array(major + minor)


def _measurements(item: SRItem, value_unit: str) -> list:
    import highdicom as hd

    codes, concept = _codes()
    length, area, value = _units(item.calibration, value_unit)
    v = item.result.values
    wanted: list[tuple[object, str, object]] = {
        "ruler": [(codes.SCT.Length, "length", length)],
        "angle": [(codes.SCT.Angle, "angle", codes.UCUM.Degree)],
        "ctr": [(codes.SCT.Width, "heart", length), (codes.SCT.Width, "thorax", length),
                (concept("CTR", PRIVATE_SCHEME, "Cardiothoracic ratio"), "ratio", codes.UCUM.NoUnits)],
    }.get(item.measurement.kind, [(codes.SCT.Area, "area", area), (codes.SCT.Mean, "mean", value),
                                  (codes.SCT.StandardDeviation, "sd", value),
                                  (codes.SCT.Minimum, "min", value), (codes.SCT.Maximum, "max", value)])
    return [hd.sr.Measurement(name=name, value=float(v[key]), unit=unit)
            for name, key, unit in wanted if key in v]


def _group(item: SRItem, number: int, header, value_unit: str):
    import highdicom as hd
    from pydicom.uid import generate_uid

    graphic_type, data = _graphic(item.measurement)
    source = hd.sr.SourceImageForRegion(header.SOPClassUID, header.SOPInstanceUID)
    region = hd.sr.ImageRegion(graphic_type, data, source)
    label = f"{item.measurement.name} {number} ({item.calibration.label})"
    tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label[:64])
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, referenced_region=region,
        measurements=_measurements(item, value_unit) or None)


def build_measurement_sr(items: list[SRItem], include_identifiers: bool = False,
                         value_units: dict[str, str] | None = None):
    """The SR dataset for ``items`` (DICOM views only). Raises MeasurementSRError."""
    import highdicom as hd
    import pydicom
    from pydicom.uid import generate_uid

    dicom = [i for i in items if i.view.source == "dicom"]
    if not dicom:
        raise MeasurementSRError("a DICOM SR can only reference DICOM images; no measurement is on "
                                 "a DICOM view - export JSON instead")
    headers: dict[str, pydicom.Dataset] = {}
    for item in dicom:
        if item.view.view_id not in headers:
            headers[item.view.view_id] = read_evidence([item.view.path])[0]
    units = value_units or {}
    groups = [_group(item, n + 1, headers[item.view.view_id], units.get(item.view.view_id, ""))
              for n, item in enumerate(dicom)]
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=generate_uid(), name="CXR-CLIP Viewer")
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=pydicom.sr.codedict.codes.cid270.Device, observer_identifying_attributes=device))
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=pydicom.sr.codedict.codes.SCT.ImagingProcedure,
        imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(headers.values()), content=report[0], series_instance_uid=generate_uid(),
        series_number=9901, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="cxrclip-viewer", series_description="Measurements")
    if not include_identifiers:
        deidentify_sr(sr)
    return sr


def write_measurement_sr(items: list[SRItem], path: str | Path, include_identifiers: bool = False,
                         value_units: dict[str, str] | None = None) -> Path:
    """Build the SR and save it privately (0600, atomic); returns the path."""
    from viewer.model.sr_tables import preload_module_table

    preload_module_table()  # highdicom's 22 MB table, parsed without freezing the UI
    sr = build_measurement_sr(items, include_identifiers, value_units)
    return write_private_with(path, lambda fh: sr.save_as(fh, enforce_file_format=True))
