"""Fixtures for the CXR-CLIP plugin tests: a tiny random model, small DICOM studies, a fake host."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
PATIENT_NAME = "PHANTOM^Testpatient"
REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "assets" / "models" / "cxrclip-demo"
SAMPLES = REPO / "assets" / "sample_studies"


def pytest_configure(config):
    config.addinivalue_line("markers", "full_prompts: use every zero-shot class prompt (slow)")


@pytest.fixture(scope="session", autouse=True)
def _sandboxed_cache(tmp_path_factory):
    """Prompt-embedding cache in a temp folder, never the user's."""
    import os

    old = os.environ.get("CXRCLIP_CACHE_DIR")
    os.environ["CXRCLIP_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("CXRCLIP_CACHE_DIR", None)
    else:
        os.environ["CXRCLIP_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _sandboxed_data_dir(tmp_path, monkeypatch):
    """Drafts go to a per-test folder, never the user's data folder."""
    monkeypatch.setenv("CXRCLIP_DATA_DIR", str(tmp_path / "user-data"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on this shared, oversubscribed CPU two threads spin-wait and run
    ~10x slower. Restored after each test so other folders keep their setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _few_class_prompts(request, monkeypatch):
    """Zero-shot with 3 class prompts per finding (1,346 take tens of seconds on this CPU);
    tests marked ``full_prompts`` use them all."""
    if request.node.get_closest_marker("full_prompts"):
        return
    import cxrclip.prompts as prompt_lib

    original = prompt_lib.class_prompts
    monkeypatch.setattr(prompt_lib, "class_prompts",
                        lambda finding, max_prompts=None, seed=0: original(finding, 3, seed))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, minilm_dir: Path) -> Path:
    """resnet18 at 64 px + MiniLM text tower, random image weights, saved once per session."""
    import torch

    from cxrclip.checkpoint import ModelCard, save_model
    from cxrclip.config import (
        ImageEncoderConfig, ModelConfig, PreprocessConfig, ProjectionConfig, TextEncoderConfig)
    from cxrclip.model import CXRClip
    from cxrclip.text_encoder import load_tokenizer

    torch.manual_seed(0)
    config = ModelConfig(image=ImageEncoderConfig(name="resnet18", image_size=64),
                         text=TextEncoderConfig(path=str(minilm_dir), max_length=32),
                         projection=ProjectionConfig(kind="linear", dim=32),
                         preprocess=PreprocessConfig.imagenet(64), name="tiny-plugin-test")
    model = CXRClip(config, pretrained_text=True)
    out = tmp_path_factory.mktemp("models") / "tiny"
    card = ModelCard(title="Tiny plugin test model", data="random weights, synthetic phantoms",
                     extra={"synthetic": True})
    save_model(model, load_tokenizer(minilm_dir), out, card=card)
    return out


@pytest.fixture(scope="session")
def bank_dir(tmp_path_factory) -> Path:
    """A folder with a small sentences.txt (the service builds the bank from it)."""
    folder = tmp_path_factory.mktemp("bank")
    (folder / "sentences.txt").write_text(
        "# test bank\nNo pleural effusion.\nRight pleural effusion.\nThe heart is enlarged.\n"
        "Heart size is normal.\nLarge right pneumothorax.\nThe lungs are clear.\n"
        "Right pleural effusion, unchanged since the prior study.\n", encoding="utf-8")
    return folder


def write_dx(path: Path, pixels: np.ndarray, study_uid: str, series_uid: str, position: str,
             number: int, name: str = PATIENT_NAME) -> str:
    """One DX file (MONOCHROME2, 12 bits) with a window; returns its SOP Instance UID."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = DX_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientName, ds.PatientID, ds.PatientSex, ds.PatientBirthDate = name, "PID-1", "F", "19500101"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20240105", "101010", "ACC1", "1"
    ds.Modality, ds.ViewPosition, ds.InstanceNumber, ds.SeriesNumber = "DX", position, number, number
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = np.ascontiguousarray(pixels.astype(np.uint16)).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return str(ds.SOPInstanceUID)


def chest_like(rows: int, cols: int, seed: int) -> np.ndarray:
    """Two dark lung fields in a bright body, plus noise (12-bit values)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols] / np.array([rows, cols])[:, None, None]
    img = 3000 - 1800 * (np.exp(-((x - 0.3) ** 2 / 0.02 + (y - 0.5) ** 2 / 0.08))
                         + np.exp(-((x - 0.7) ** 2 / 0.02 + (y - 0.5) ** 2 / 0.08)))
    return np.clip(img + rng.normal(0, 40, img.shape), 0, 4095)


def make_study(folder: Path, seed: int = 0, shape: tuple[int, int] = (80, 96)) -> Path:
    """A two-view DX study (PA + LL) in ``folder``."""
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, s1, s2 = generate_uid(), generate_uid(), generate_uid()
    write_dx(folder / "pa.dcm", chest_like(*shape, seed), study, s1, "PA", 1)
    write_dx(folder / "lat.dcm", chest_like(*shape, seed + 1)[:, ::-1], study, s2, "LL", 2)
    return folder


def study_handle(folder: Path) -> Any:
    """Scan ``folder`` with the viewer's data layer and wrap its first study in a StudyHandle."""
    from viewer.io.scan import scan_folder
    from viewer.plugin_api import StudyHandle, ViewHandle

    result = scan_folder(folder)
    study = next(s for p in result.studies.patients for s in p.studies)
    return StudyHandle(study, [ViewHandle(v) for v in study.views()])


@pytest.fixture
def two_studies(tmp_path) -> tuple[Path, Path]:
    return make_study(tmp_path / "a", 0), make_study(tmp_path / "b", 5)


class FakeHost:
    """Records what the plugin asks of the viewer."""

    def __init__(self) -> None:
        self.overlays: dict[str, dict[str, Any]] = {}
        self.problems: list[tuple[str, str]] = []
        self.panels: dict[str, Any] = {}
        self.actions: list[tuple[str, str, str | None]] = []
        self.messages: list[str] = []
        self.main_window = None
        self.current_study = None
        self.selected_view = None
        self.phi_hidden = False
        self.export_formats: list[Any] = []

    def add_dock_panel(self, title, widget, area="right"):
        self.panels[title] = widget
        return None

    def set_overlay(self, view_id, layer):
        self.overlays.setdefault(view_id, {})[layer.name] = layer

    def remove_overlay(self, view_id, name):
        self.overlays.get(view_id, {}).pop(name, None)

    def add_menu_action(self, menu, text, callback, shortcut=None):
        self.actions.append((menu, text, shortcut))

    def add_export_format(self, fmt):
        self.export_formats.append(fmt)

    def report_problem(self, where, reason):
        self.problems.append((where, reason))

    def status_message(self, text):
        self.messages.append(text)

    def current_window(self, view_id):
        return None


@dataclass
class ManifestEntryPoint:
    """Stands in for an entry point of the group ``cxrclip_viewer.plugins``."""

    name: str
    target: object

    def load(self):
        return self.target


@pytest.fixture
def plugin_window(qtbot, tmp_path, tiny_model_dir, bank_dir, monkeypatch):
    """The viewer's main window with only the CXR-CLIP plugin (tiny model, sandboxed settings),
    once the plugin has activated and built its panels (its model may still be loading)."""
    from PySide6.QtCore import QSettings

    from plugins.cxrclip_findings.manifest import MANIFEST
    from viewer.qt.main_window import MainWindow

    monkeypatch.setenv("CXRCLIP_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("CXRCLIP_SENTENCE_BANK", str(bank_dir))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings,
                     plugin_entry_points=[ManifestEntryPoint("cxrclip_findings", MANIFEST)])
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: MANIFEST.name in win.plugin_host.registry.names(), timeout=60_000)
    plugin = next(a.plugin for a in win.plugin_host.registry.active if a.manifest is MANIFEST)
    qtbot.waitUntil(lambda: plugin.built, timeout=60_000)
    yield win
    win.plugin_host.shutdown()


@pytest.fixture
def fake_host() -> FakeHost:
    return FakeHost()


def activate_plugin(qtbot, host: Any, settings_path: Path, service_factory: Any = None) -> Any:
    """A `CxrClipFindingsPlugin` (settings in an ini file) activated on ``host``; its panels
    belong to ``qtbot``. The caller deactivates it."""
    from PySide6.QtCore import QSettings

    from plugins.cxrclip_findings.plugin import CxrClipFindingsPlugin

    plugin = CxrClipFindingsPlugin(service_factory, QSettings(str(settings_path), QSettings.Format.IniFormat))
    plugin.activate(host)
    plugin.finish_building()  # the panels now, not a step per event-loop turn
    for panel in host.panels.values():
        qtbot.addWidget(panel)
    return plugin


@pytest.fixture
def demo_plugin(qtbot, fake_host, tmp_path, monkeypatch):
    """The plugin on the fake host with the bundled demo model loaded (one engine thread)."""
    if not (DEMO_MODEL / "config.json").is_file():
        pytest.skip("bundled demo model assets/models/cxrclip-demo is not present")
    monkeypatch.setenv("CXRCLIP_MODEL", str(DEMO_MODEL))
    monkeypatch.setenv("CXRCLIP_THREADS", "1")
    plugin = activate_plugin(qtbot, fake_host, tmp_path / "s.ini")
    qtbot.waitUntil(lambda: plugin.controller.service is not None, timeout=180_000)
    yield plugin
    plugin.deactivate()


@pytest.fixture
def helpers():
    """Module helpers for test files (they cannot import each other)."""
    return type("Helpers", (), {"make_study": staticmethod(make_study),
                                "study_handle": staticmethod(study_handle),
                                "write_dx": staticmethod(write_dx),
                                "chest_like": staticmethod(chest_like),
                                "activate_plugin": staticmethod(activate_plugin)})
