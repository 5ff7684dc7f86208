"""The main window presents the application model: change the model, the widgets follow."""
from __future__ import annotations

import ast
from pathlib import Path

import viewer.qt.plugin_host_qt as host_module


def test_widgets_follow_the_model(opened, settings):
    model = opened.model
    pa, lat = opened.image_views()
    model.select_view(lat.view_id)
    assert lat.is_selected and not pa.is_selected
    assert opened.plugin_host.selected_view.view_id == lat.view_id
    model.set_hide_phi(True)
    assert opened.actions_by_key["hide_phi"].isChecked() and pa.hide_phi
    assert str(settings.value("privacy/hide_phi")).lower() == "true"
    assert "Doe" not in opened.windowTitle()
    model.set_sync_window(True)
    assert opened.actions_by_key["sync_wl"].isChecked()
    model.measurements.set_tool("ctr")
    assert opened.actions_by_key["tool_ctr"].isChecked()
    assert not opened.actions_by_key["tool_navigate"].isChecked()
    opened.actions_by_key["tool_navigate"].trigger()
    assert model.measurements.tool == "navigate"
    model.close_study()
    assert opened.image_views() == [] and opened.plugin_host.current_study is None


def test_display_states_are_the_models(opened):
    pa = opened.image_views()[0]
    assert pa.state is opened.model.display_state(pa.view_id)
    opened.model.display_state(pa.view_id).set_window(1234, 567)
    assert pa.effective_window() == (1234, 567)


def test_plugin_host_does_not_import_the_main_window():
    tree = ast.parse(Path(host_module.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "viewer.qt.main_window" not in imported
