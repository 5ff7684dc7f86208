"""Plugin API data types and the Qt-free discovery/dispatch (no widgets needed)."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from viewer.model.study import Study, View
from viewer.plugin_api import (BasePlugin, ColorBar, OverlayLayer, PluginManifest, StudyHandle,
                               ViewHandle)
from viewer.plugin_host import PluginRegistry, discover_plugins, import_factory


@dataclass
class FakeEntryPoint:
    name: str
    target: object

    def load(self):
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def _manifest(**kw) -> PluginManifest:
    base = dict(name="p", version="1", description="d", factory="mod:make")
    base.update(kw)
    return PluginManifest(**base)


def test_manifest_validates_factory_and_tuples():
    with pytest.raises(ValueError, match="package.module:attr"):
        _manifest(factory="no_colon")
    with pytest.raises(TypeError, match="tuple of strings"):
        _manifest(modalities="CR")
    m = _manifest(factory="a.b:c")
    assert (m.factory_module, m.factory_attr) == ("a.b", "c")


def test_manifest_applicability():
    m = _manifest(modalities=("CR", "DX"), view_positions=("PA", "AP"))
    pa = View("1", Path("a"), modality="CR", view_position="PA")
    lat = View("2", Path("b"), modality="CR", view_position="LL")
    mr = View("3", Path("c"), modality="MR", view_position="")
    assert m.applies_to_view(pa) and not m.applies_to_view(lat) and not m.applies_to_view(mr)
    assert m.why_not_applicable([pa, lat]) is None
    reason = m.why_not_applicable([mr])
    assert reason.endswith("handles CR, DX with view position PA, AP; this study has MR (view position not recorded)")
    assert m.why_not_applicable([lat]).endswith("this study has CR (view position LL)")
    # A plugin that asks for no view position names the modalities alone (no "US/?").
    us = View("4", Path("d"), modality="US", view_position="")
    assert _manifest(modalities=("CR", "DX", "OT")).why_not_applicable([us, mr]).endswith(
        "handles CR, DX, OT; this study has MR, US")
    assert _manifest().why_not_applicable([mr]) is None  # () = all modalities
    png = View("file:/x.png", Path("/x.png"), source="image")
    assert _manifest(modalities=("CR", "DX", "OT")).applies_to_view(png)
    assert not m.applies_to_view(png)


def test_overlay_and_colorbar_validation():
    ok = OverlayLayer("heat", np.zeros((4, 5, 4), np.uint8), 0.4,
                      colorbar=ColorBar("hot", 0.0, 1.0, "sim"))
    assert ok.rgba.flags.c_contiguous
    with pytest.raises(ValueError, match="H x W x 4 uint8"):
        OverlayLayer("bad", np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="H x W x 4 uint8"):
        OverlayLayer("bad", np.zeros((4, 5, 4), np.float32))
    with pytest.raises(ValueError, match="opacity"):
        OverlayLayer("bad", np.zeros((4, 5, 4), np.uint8), opacity=1.5)
    with pytest.raises(ValueError, match="vmin <= vmax"):
        ColorBar("hot", 1.0, 0.0)
    with pytest.raises(ValueError, match="N x 4 uint8"):
        ColorBar("custom", 0, 1, colors=np.zeros((3, 3), np.uint8))


def test_view_handle_decodes_once_and_caches():
    calls = []

    class Image:
        modality = np.arange(6, dtype=np.float64).reshape(2, 3)

    def decode(view):
        calls.append(view.view_id)
        return Image()

    handle = ViewHandle(View("v1", Path("x")), decode=decode)
    pixels = handle.modality_pixels()
    assert pixels.dtype == np.float32 and pixels[1, 2] == 5
    handle.modality_pixels()
    assert calls == ["v1"]
    study = StudyHandle(Study("s1"), [handle])
    assert study.view("v1") is handle
    with pytest.raises(KeyError, match="v1"):
        study.view("nope")


def test_discovery_reports_bad_manifests_without_raising():
    good = _manifest(name="good")
    found = discover_plugins(entry_points=[
        FakeEntryPoint("good", good),
        FakeEntryPoint("broken", ModuleNotFoundError("No module named 'x'")),
        FakeEntryPoint("wrong_type", {"name": "x"}),
    ])
    by_name = {d.name: d for d in found}
    assert by_name["good"].manifest is good and by_name["good"].error is None
    assert "ModuleNotFoundError" in by_name["broken"].error
    assert "PluginManifest" in by_name["wrong_type"].error


def test_installed_entry_points_include_histogram():
    names = {d.entry_name for d in discover_plugins()}
    assert "histogram" in names


def test_import_factory_errors_name_the_plugin(tmp_path, monkeypatch):
    (tmp_path / "fake_plugin_mod.py").write_text("def make():\n    return 1\nNOT_CALLABLE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_factory(_manifest(factory="fake_plugin_mod:make"))() == 1
    with pytest.raises(ImportError, match="'p'.*no_such_module"):
        import_factory(_manifest(factory="no_such_module:make"))
    with pytest.raises(AttributeError, match="has no 'missing'"):
        import_factory(_manifest(factory="fake_plugin_mod:missing"))
    with pytest.raises(TypeError, match="not callable"):
        import_factory(_manifest(factory="fake_plugin_mod:NOT_CALLABLE"))
    sys.modules.pop("fake_plugin_mod", None)


class Recorder(BasePlugin):
    def __init__(self, fail_on: str = "") -> None:
        super().__init__()
        self.fail_on = fail_on
        self.events: list[tuple] = []

    def _hook(self, name, *args):
        self.events.append((name, *args))
        if name == self.fail_on:
            raise RuntimeError(f"{name} exploded")

    def activate(self, host):
        super().activate(host)
        self._hook("activate")

    def study_opened(self, study):
        self._hook("study_opened", study.study_uid)

    def study_not_applicable(self, study, reason):
        self._hook("not_applicable", reason)

    def view_selected(self, view):
        self._hook("view_selected", view.view_id)


def test_registry_dispatch_applicability_and_failures():
    problems: list[tuple[str, str]] = []
    registry = PluginRegistry(lambda where, reason: problems.append((where, reason)))
    cr_only = Recorder()
    boom = Recorder(fail_on="study_opened")
    assert registry.activate(_manifest(name="cr", modalities=("CR",)), lambda: cr_only, "host")
    assert registry.activate(_manifest(name="boom"), lambda: boom, "host")
    assert registry.activate(_manifest(name="ctor"), lambda: 1 / 0, "host") is None
    assert registry.activate(_manifest(name="act"), lambda: Recorder(fail_on="activate"), "h") is None
    assert registry.names() == ["cr", "boom"]
    mr = View("m1", Path("m"), modality="MR")
    study = StudyHandle(Study("s1"), [ViewHandle(mr)])
    registry.study_opened(study)
    registry.view_selected(study.views[0])
    assert cr_only.events[0] == ("activate",)
    assert cr_only.events[1][0] == "not_applicable" and "MR" in cr_only.events[1][1]
    assert len(cr_only.events) == 2  # MR view is not sent to a CR-only plugin
    assert ("view_selected", "m1") in boom.events  # boom keeps working after its failure
    where = [w for w, _ in problems]
    assert where == ["plugin ctor", "plugin act", "plugin boom"]
    assert "ZeroDivisionError" in problems[0][1] and "study_opened failed" in problems[2][1]
