"""The Study List dock: sort, filter, Hide-PHI, Enter opens, [ and ] step through studies."""
from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt

STUDIES = [("Doe^Jane", "PID-1", "20240105"), ("Doe^Jane", "PID-1", "20210302"),
           ("Roe^Rick", "PID-2", "20221111")]


@pytest.fixture
def three_studies(tmp_path, facts) -> Path:
    """Three copies of the test study with other patients/dates/UIDs."""
    template = facts.make_study(tmp_path / "template")
    root = tmp_path / "three"
    for index, (name, pid, date) in enumerate(STUDIES):
        folder = root / f"s{index}"
        folder.mkdir(parents=True)
        study_uid = generate_uid()
        for path in sorted((template / "study").glob("*.dcm")):
            ds = pydicom.dcmread(path)
            ds.PatientName, ds.PatientID, ds.StudyDate = name, pid, date
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(folder / path.name)
    return root


def _open(qtbot, window, folder):
    with qtbot.waitSignal(window.scan_finished, timeout=15000):
        window.open_path(folder)
    return window.study_list


def test_rows_sorted_by_date_newest_first_and_filtered(qtbot, window, three_studies):
    table = _open(qtbot, window, three_studies)
    assert [r[2] for r in table.rows()] == ["2024-01-05", "2022-11-11", "2021-03-02"]
    assert table.rows()[0][:2] == ("Doe Jane", "PID-1") and table.rows()[0][5] == "PA, LL"
    table.filter.setText("roe")
    assert [r[0] for r in table.rows()] == ["Roe Rick"]
    table.filter.setText("")
    table.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    assert [r[0] for r in table.rows()] == ["Doe Jane", "Doe Jane", "Roe Rick"]


def test_hide_phi_masks_the_list_and_the_filter_only_finds_what_is_shown(qtbot, window, three_studies):
    table = _open(qtbot, window, three_studies)
    window.set_hide_phi(True)
    assert all(r[:3] == ("Anonymous", "", "") for r in table.rows())
    assert [r for r in table.rows() if "2024" in "".join(r)] == []
    table.filter.setText("Roe")
    assert table.rows() == []


def test_enter_opens_and_brackets_step_through_the_shown_order(qtbot, window, three_studies):
    table = _open(qtbot, window, three_studies)
    table.table.setFocus()
    table.table.selectRow(1)  # 2022-11-11, Roe
    qtbot.keyClick(table.table, Qt.Key.Key_Return)
    assert window.current_study.study.date == "20221111"
    window.actions_by_key["next_study"].trigger()
    assert window.current_study.study.date == "20210302"
    window.actions_by_key["next_study"].trigger()  # wraps to the top row
    assert window.current_study.study.date == "20240105"
    window.actions_by_key["previous_study"].trigger()
    assert window.current_study.study.date == "20210302"
    assert window.actions_by_key["next_study"].shortcut().toString() == "]"
