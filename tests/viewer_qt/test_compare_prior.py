"""Compare with prior: a current + prior pair of the same patient side by side, linked."""
from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from viewer.model.measurements import Measurement
from viewer.plugin_api import BasePlugin, PluginManifest

SAMPLES = Path(__file__).resolve().parents[2] / "assets" / "sample_studies"


def _copy_study(source: Path, target: Path, patient_id: str, study_uid: str, date: str) -> None:
    target.mkdir(parents=True)
    series = {}
    for path in sorted(source.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientName = patient_id, "PAIR^TEST"
        ds.StudyInstanceUID, ds.StudyDate = study_uid, date
        ds.SeriesInstanceUID = series.setdefault(ds.SeriesInstanceUID, generate_uid())
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(target / path.name)


@pytest.fixture
def pair(tmp_path) -> Path:
    """current (2024-07-12, cardiomegaly sample) + prior (2023-06-26, normal sample)."""
    root = tmp_path / "pair"
    _copy_study(SAMPLES / "01_normal", root / "prior", "PAIR-1", generate_uid(), "20230626")
    _copy_study(SAMPLES / "02_cardiomegaly_bilateral_effusions", root / "current", "PAIR-1",
                generate_uid(), "20240712")
    _copy_study(SAMPLES / "03_right_pneumothorax", root / "other", "OTHER-9", generate_uid(), "20220101")
    return root


class Recorder(BasePlugin):
    def __init__(self) -> None:
        super().__init__()
        self.priors, self.layouts, self.measured = [], [], []

    def prior_changed(self, prior) -> None:
        self.priors.append(None if prior is None else prior.study.date)

    def layout_changed(self, layout: str) -> None:
        self.layouts.append(layout)

    def measurement_changed(self, action, measurement, result) -> None:
        self.measured.append((action, measurement.view_id))


def test_current_and_prior_side_by_side_with_linked_window_zoom_and_pan(qtbot, window, pair):
    recorder = Recorder()
    manifest = PluginManifest("Recorder", "1", "records", "tests:recorder")
    window.plugin_host.registry.activate(manifest, lambda: recorder, window.plugin_host)
    with qtbot.waitSignal(window.scan_finished, timeout=30000):
        window.open_path(pair)
    model = window.model
    current = next(s for s in model.scan.studies.studies() if s.date == "20240712")
    with qtbot.waitSignal(window.study_ready, timeout=60000):
        window.show_study(current)
    assert window.actions_by_key["compare_prior"].isEnabled()
    with qtbot.waitSignal(window.study_ready, timeout=60000):
        window.actions_by_key["compare_prior"].trigger()
    left, right = window.image_views()
    assert left.study.date == "20240712" and right.study.date == "20230626"
    assert left.view.is_frontal and right.view.is_frontal
    assert right.caption == "PRIOR" and "PRIOR" in right.overlay_lines()["top_right"]
    assert window.plugin_host.prior_study.study.date == "20230626"
    assert recorder.priors == ["20230626"] and recorder.layouts == ["compare"]
    qtbot.waitUntil(lambda: left.pixels is not None and right.pixels is not None, timeout=60000)

    # W/L on the current: the prior follows, at the same place of its own value range
    (l_lo, l_hi), (r_lo, r_hi) = left.pixels.data_range, right.pixels.data_range
    left.state.set_window(l_lo + 0.4 * (l_hi - l_lo), 0.3 * (l_hi - l_lo))
    expected = (r_lo + 0.4 * (r_hi - r_lo), 0.3 * (r_hi - r_lo))
    assert right.effective_window() == pytest.approx(expected)
    before = right.rendered_uint8().copy()
    left.state.set_window(l_lo + 0.6 * (l_hi - l_lo), 0.2 * (l_hi - l_lo))
    assert right.effective_window() == pytest.approx((r_lo + 0.6 * (r_hi - r_lo), 0.2 * (r_hi - r_lo)))
    assert not (right.rendered_uint8() == before).all()  # the prior was re-rendered
    right.state.zoom_at(2.0, (50, 60), right.image_size(), right.widget_size())  # zoom on the prior
    assert (left.state.zoom, left.state.pan, left.state.fit) == (right.state.zoom, right.state.pan, False)

    model.measurements.add(Measurement("ruler", right.view_id, ((10, 10), (20, 20))))
    assert recorder.measured == [("added", right.view_id)]

    window.actions_by_key["compare_prior"].trigger()  # back to the study layout
    assert len(window.image_views()) == 2 and all(v.study.date == "20240712" for v in window.image_views())
    assert recorder.priors == ["20230626", None] and window.plugin_host.prior_study is None
    assert len(model.measurements) == 0  # the prior's measurements went with it


def test_compare_is_refused_for_the_oldest_study(qtbot, window, pair):
    with qtbot.waitSignal(window.scan_finished, timeout=30000):
        window.open_path(pair)
    oldest = next(s for s in window.model.scan.studies.studies() if s.date == "20230626")
    window.show_study(oldest)
    assert not window.actions_by_key["compare_prior"].isEnabled()
    window._on_compare_prior(True)
    assert window.model.layout == "study" and not window.actions_by_key["compare_prior"].isChecked()
    assert "no earlier study" in window.statusBar().currentMessage()
