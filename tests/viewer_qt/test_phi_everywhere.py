"""Hide-PHI walks every widget of the main window and finds no identifier; it is remembered.

The folder holds a bundled sample study (its name, ID, accession and dates read
with pydicom) under identifying file names, a DICOM file with a birth date,
department and no view position, a PNG in a MIMIC-like folder named after the
patient, and an unreadable file, so labels, tooltips, overlays, Problems, the
tag browser, the histogram plugin's header, menus and titles all get a chance to leak.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from PySide6.QtCore import QModelIndex, QSettings, Qt
from PySide6.QtWidgets import (QAbstractButton, QAbstractItemView, QComboBox, QLabel, QLineEdit,
                               QMenu, QPlainTextEdit, QProgressBar, QTabBar, QTextEdit, QWidget)

from viewer.model.study import format_dicom_date

SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "sample_studies" / "01_normal"
WAIT = 30000


@dataclass
class EP:
    name: str
    target: object

    def load(self):
        return self.target


# --- walking the UI --------------------------------------------------------
def _columns(model, parent: QModelIndex) -> int:
    try:
        return model.columnCount(parent)
    except TypeError:  # list models (QStringListModel, QListView's) keep columnCount private
        return 1


def _model_texts(model, parent: QModelIndex | None = None) -> list[str]:
    parent = parent or QModelIndex()
    out: list[str] = []
    if not parent.isValid():
        for c in range(_columns(model, parent)):
            for role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
                out.append(str(model.headerData(c, Qt.Orientation.Horizontal, role) or ""))
    for r in range(model.rowCount(parent)):
        for c in range(_columns(model, parent)):
            index = model.index(r, c, parent)
            for role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole,
                         Qt.ItemDataRole.StatusTipRole):
                out.append(str(index.data(role) or ""))
        out += _model_texts(model, model.index(r, 0, parent))
    return out


def _widget_texts(widget: QWidget) -> list[str]:
    out = [widget.windowTitle(), widget.toolTip(), widget.statusTip(), widget.whatsThis(),
           widget.accessibleName(), widget.accessibleDescription()]
    if isinstance(widget, (QLabel, QAbstractButton)):
        out.append(widget.text())
    if isinstance(widget, QLineEdit):
        out += [widget.text(), widget.placeholderText()]
    if isinstance(widget, (QTextEdit, QPlainTextEdit)):
        out.append(widget.toPlainText())
    if isinstance(widget, QComboBox):
        out += [widget.itemText(i) for i in range(widget.count())]
    if isinstance(widget, QProgressBar):
        out.append(widget.text())
    if isinstance(widget, QTabBar):
        out += [widget.tabText(i) for i in range(widget.count())]
        out += [widget.tabToolTip(i) for i in range(widget.count())]
    if isinstance(widget, QAbstractItemView) and widget.model() is not None:
        out += _model_texts(widget.model())
    if isinstance(widget, QMenu):
        out.append(widget.title())
    for action in widget.actions():
        out += [action.text(), action.toolTip(), action.statusTip(), action.iconText()]
    if hasattr(widget, "overlay_lines"):  # painted corner text of an image view
        out += [line for lines in widget.overlay_lines().values() for line in lines]
        out += [widget.message, widget.label]
    return out


def ui_texts(window) -> str:
    """Every text the main window and its children show or can show (tooltips, menus)."""
    texts = [window.windowTitle(), window.statusBar().currentMessage()]
    for widget in [window, *window.findChildren(QWidget)]:
        texts += _widget_texts(widget)
    return "\n".join(t for t in texts if t)


# --- the folder ------------------------------------------------------------
@dataclass
class Folder:
    root: Path
    secrets: list[str]          # must never show while PHI is hidden
    sample_name: str
    sample_id: str
    sample_file: str


def _edit(src: Path, dst: Path, **values) -> pydicom.Dataset:
    ds = pydicom.dcmread(src)
    for key, value in values.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(dst)
    return ds


@pytest.fixture
def phi_folder(tmp_path: Path, facts) -> Folder:
    root = tmp_path / "Roe_Richard_MRN20931"
    sample_dir = root / "PH0101000000_PHANTOM"
    sample_dir.mkdir(parents=True)
    shutil.copy(SAMPLE / "1_PA.dcm", sample_dir / "PHANTOM_0000_chest_pa.dcm")
    shutil.copy(SAMPLE / "2_LATERAL.dcm", sample_dir / "PHANTOM_0000_chest_lat.dcm")
    sample = pydicom.dcmread(SAMPLE / "1_PA.dcm", stop_before_pixels=True)
    secrets = [str(sample.PatientName), str(sample.PatientName).replace("^", " "), sample.PatientID,
               sample.AccessionNumber, sample.StudyDate, format_dicom_date(sample.StudyDate),
               sample.StudyTime, sample.StudyInstanceUID, "PHANTOM_0000_chest_pa",
               "PHANTOM_0000_chest_lat", "PH0101000000_PHANTOM", "Roe_Richard_MRN20931"]
    # a small DICOM: birth date, department, no view position (label falls back)
    plain = facts.make_study(tmp_path / "gen")
    roe = _edit(plain / "study" / "pa.dcm", root / "Roe_Richard_19540217.dcm",
                PatientName="Roe^Richard", PatientID="RR-20931", PatientBirthDate="19540217",
                AccessionNumber="ACC-55821", InstitutionalDepartmentName="West Wing Radiology",
                InstitutionName="Saint Elsewhere Hospital", StudyDate="20190411",
                StudyInstanceUID=pydicom.uid.generate_uid(), ViewPosition=None,
                ViewCodeSequence=None, StudyDescription="CHEST")
    secrets += ["Roe", "Richard", "RR-20931", "19540217", "1954-02-17", "ACC-55821",
                "West Wing Radiology", "Saint Elsewhere", "20190411", "2019-04-11",
                roe.StudyInstanceUID, "Roe_Richard_19540217"]
    # MIMIC-like PNG: patient and study are folder names
    png_dir = root / "p_Moe_Mary" / "s_ACC77812"
    png_dir.mkdir(parents=True)
    Image.fromarray((np.arange(64 * 48) % 251).reshape(48, 64).astype(np.uint8)).save(
        png_dir / "Moe_Mary_1949_chest.png")
    secrets += ["p_Moe_Mary", "s_ACC77812", "Moe_Mary_1949_chest"]
    (root / "Roe_Richard_broken.dcm").write_bytes(b"not a DICOM file" * 20)
    secrets += ["Roe_Richard_broken", str(tmp_path)]
    return Folder(root, secrets, str(sample.PatientName), sample.PatientID, "PHANTOM_0000_chest_pa")


def _cxrclip_sandbox(monkeypatch, tmp_path: Path) -> None:
    """The CXR-CLIP plugin's drafts and caches in temp folders; 3 class prompts per finding."""
    import cxrclip.prompts as prompt_lib

    monkeypatch.setenv("CXRCLIP_DATA_DIR", str(tmp_path / "user-data"))
    monkeypatch.setenv("CXRCLIP_CACHE_DIR", str(tmp_path / "cache"))
    original = prompt_lib.class_prompts
    monkeypatch.setattr(prompt_lib, "class_prompts",
                        lambda finding, max_prompts=None, seed=0: original(finding, 3, seed))


@pytest.fixture(params=["histogram", "all plugins"])
def phi_window(request, qtbot, settings, monkeypatch, tmp_path):
    """A main window with the installed histogram plugin, or with every installed plugin
    (the CXR-CLIP plugin with the bundled demo model), as the app loads them."""
    from viewer.plugin_host import discover_plugins
    from viewer.qt.main_window import MainWindow

    found = [d for d in discover_plugins() if d.manifest is not None]
    if request.param == "histogram":
        found = [d for d in found if d.entry_name == "histogram"]
    else:
        _cxrclip_sandbox(monkeypatch, tmp_path)
    win = MainWindow(settings=settings,
                     plugin_entry_points=[EP(d.entry_name, d.manifest) for d in found])
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitUntil(lambda: "Histogram" in win.plugin_host.registry.names(), timeout=WAIT)
    if request.param != "histogram":
        qtbot.waitUntil(lambda: len(win.plugin_host.registry.names()) == len(found), timeout=WAIT)
    return win


def _open(qtbot, win, folder: Path) -> None:
    with qtbot.waitSignal(win.study_ready, timeout=WAIT):
        win.open_path(folder)
    qtbot.waitUntil(lambda: win.problems.count() >= 1, timeout=WAIT)


def _findings_tree(win):
    """The CXR-CLIP Findings panel's tree when that plugin is loaded, else None."""
    dock = win.plugin_host.docks.get("Findings")
    return dock.widget().widget().tree if dock is not None else None


def _show(qtbot, win, study) -> None:
    with qtbot.waitSignal(win.study_ready, timeout=WAIT):
        win.show_study(study)
    win.select_view(win.image_views()[-1].view_id)
    hist = win.plugin_host.docks["Histogram"].widget().widget()
    qtbot.waitUntil(lambda: "computing" not in hist.label.text(), timeout=WAIT)
    tree = _findings_tree(win)
    if tree is not None and study.views()[0].path.suffix == ".dcm":  # the model scored the study
        qtbot.waitUntil(lambda: tree.topLevelItemCount() >= 14, timeout=WAIT)


def _open_tags(qtbot, win) -> None:
    win.actions_by_key["tag_browser"].trigger()
    browser = win._tag_dialog.browser
    qtbot.waitUntil(lambda: "loading" not in browser.title.text().lower()
                    and not browser.is_filling(), timeout=WAIT)


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s and s.lower() in text.lower()]


def test_hide_phi_hides_every_identifier_in_every_widget(qtbot, phi_window, phi_folder):
    win = phi_window
    win.set_hide_phi(True)
    _open(qtbot, win, phi_folder.root)
    assert len(win.scan.studies.studies()) == 3
    for study in win.scan.studies.studies():
        _show(qtbot, win, study)
        _open_tags(qtbot, win)
        win.report_problem(str(study.views()[0].path),
                           f"test: cannot use {study.views()[0].path}", study.views()[0].path)
        # a plugin's status line (e.g. "Exported <path>"): the export's folder and file name
        # can carry the patient's name
        win.plugin_host.status_message(f"Exported {phi_folder.root / 'Roe_Richard_MRN20931_findings.json'} "
                                       f"for {phi_folder.sample_name} in 0.2 s")
        assert _leaks(ui_texts(win), phi_folder.secrets) == [], study.description
    texts = ui_texts(win)
    assert "Anonymous" in texts and "file " in "\n".join(w for w, _ in win.problems.rows())


def test_identifiers_come_back_when_hide_phi_is_off(qtbot, phi_window, phi_folder):
    win = phi_window
    win.set_hide_phi(True)
    _open(qtbot, win, phi_folder.root)
    sample = next(s for s in win.scan.studies.studies() if s.accession_number.startswith("A101"))
    _show(qtbot, win, sample)
    _open_tags(qtbot, win)
    win.set_hide_phi(False)
    _open_tags(qtbot, win)
    shown = ui_texts(win)
    for text in (phi_folder.sample_name.replace("^", " "), phi_folder.sample_id,
                 phi_folder.sample_file, "Roe_Richard_broken.dcm", "Moe_Mary_1949_chest.png"):
        assert text in shown
    win.set_hide_phi(True)  # and away again on the toggle path
    _open_tags(qtbot, win)
    assert _leaks(ui_texts(win), phi_folder.secrets) == []


def test_hide_phi_is_remembered_across_restarts(qtbot, tmp_path):
    from viewer.qt.main_window import MainWindow

    path = str(tmp_path / "persist.ini")
    first = MainWindow(settings=QSettings(path, QSettings.Format.IniFormat), load_plugins=False)
    qtbot.addWidget(first)
    assert not first.hide_phi
    with qtbot.waitSignal(first.phi_hidden_changed) as blocker:
        first.actions_by_key["hide_phi"].trigger()
    assert blocker.args == [True]
    first.settings.sync()
    second = MainWindow(settings=QSettings(path, QSettings.Format.IniFormat), load_plugins=False)
    qtbot.addWidget(second)
    assert second.hide_phi and second.actions_by_key["hide_phi"].isChecked()
    second.set_hide_phi(False)
    second.settings.sync()
    third = MainWindow(settings=QSettings(path, QSettings.Format.IniFormat), load_plugins=False)
    qtbot.addWidget(third)
    assert not third.hide_phi
