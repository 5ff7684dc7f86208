"""The one table of main-window actions: text, shortcut, icon, menu.

The main window builds its QActions from `ACTIONS`, and Help ▸ Keyboard
shortcuts lists the same table, so the two never disagree. Mouse gestures of
the image view are listed in `MOUSE_GESTURES`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionSpec:
    """One main-window action; ``key`` names the handler ``MainWindow._on_<key>``."""

    key: str
    menu: str
    text: str
    shortcut: str = ""
    icon: str = ""
    checkable: bool = False
    toolbar: bool = False


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open_folder", "File", "Open Folder…", "Ctrl+O", "mdi6.folder-open", toolbar=True),
    ActionSpec("open_file", "File", "Open File…", "Ctrl+Shift+O", "mdi6.file-image"),
    ActionSpec("cancel_scan", "File", "Cancel Loading", "Esc", "mdi6.cancel"),
    ActionSpec("export_png", "File", "Export View as PNG…", "Ctrl+E", "mdi6.content-save", toolbar=True),
    ActionSpec("close_study", "File", "Close Study", "Ctrl+W", "mdi6.close"),
    ActionSpec("quit", "File", "Quit", "Ctrl+Q", "mdi6.exit-to-app"),
    ActionSpec("fit", "View", "Fit to Window", "F", "mdi6.fit-to-screen", toolbar=True),
    ActionSpec("one_to_one", "View", "Actual Pixels (1:1)", "1", "mdi6.numeric-1-box-outline", toolbar=True),
    ActionSpec("zoom_in", "View", "Zoom In", "+", "mdi6.magnify-plus"),
    ActionSpec("zoom_out", "View", "Zoom Out", "-", "mdi6.magnify-minus"),
    ActionSpec("rotate_cw", "View", "Rotate 90° Clockwise", "R", "mdi6.rotate-right", toolbar=True),
    ActionSpec("rotate_ccw", "View", "Rotate 90° Counter-clockwise", "Shift+R", "mdi6.rotate-left"),
    ActionSpec("flip_h", "View", "Flip Horizontal", "H", "mdi6.flip-horizontal", toolbar=True),
    ActionSpec("flip_v", "View", "Flip Vertical", "V", "mdi6.flip-vertical"),
    ActionSpec("invert", "View", "Invert", "I", "mdi6.invert-colors", toolbar=True),
    ActionSpec("reset", "View", "Reset View", "Ctrl+R", "mdi6.restore", toolbar=True),
    ActionSpec("sync_wl", "View", "Sync Window/Level Across Views", "S", "mdi6.link-variant",
               checkable=True, toolbar=True),
    ActionSpec("hide_phi", "View", "Hide Patient Identifiers", "Ctrl+H", "mdi6.incognito",
               checkable=True, toolbar=True),
    ActionSpec("overlays", "View", "Show Corner Overlays", "O", "mdi6.text-box-outline", checkable=True),
    ActionSpec("next_view", "View", "Select Next View", "N", "mdi6.arrow-right-bold"),
    ActionSpec("next_study", "View", "Next Study", "]", "mdi6.skip-next"),
    ActionSpec("previous_study", "View", "Previous Study", "[", "mdi6.skip-previous"),
    ActionSpec("preset_file", "Window", "Window from File", "F1"),
    ActionSpec("preset_full", "Window", "Full Range", "F2"),
    ActionSpec("preset_lung", "Window", "Lung", "F3"),
    ActionSpec("preset_mediastinum", "Window", "Mediastinum", "F4"),
    ActionSpec("preset_bone", "Window", "Bone", "F5"),
    ActionSpec("compare_prior", "View", "Compare with Prior", "P", "mdi6.compare",
               checkable=True, toolbar=True),
    ActionSpec("tool_navigate", "Measure", "Navigate (Pan, No Tool)", "G", "mdi6.cursor-default",
               checkable=True, toolbar=True),
    ActionSpec("tool_ruler", "Measure", "Ruler", "M", "mdi6.ruler", checkable=True, toolbar=True),
    ActionSpec("tool_angle", "Measure", "Angle", "A", "mdi6.angle-acute", checkable=True, toolbar=True),
    ActionSpec("tool_rect", "Measure", "Rectangle ROI", "B", "mdi6.vector-rectangle",
               checkable=True, toolbar=True),
    ActionSpec("tool_ellipse", "Measure", "Ellipse ROI", "E", "mdi6.vector-ellipse",
               checkable=True, toolbar=True),
    ActionSpec("tool_ctr", "Measure", "Cardiothoracic Ratio", "T", "mdi6.heart-outline",
               checkable=True, toolbar=True),
    ActionSpec("delete_measurement", "Measure", "Delete Selected Measurement", "Del", "mdi6.delete"),
    ActionSpec("export_measurements", "Measure", "Export Measurements as JSON…", "Ctrl+Shift+E",
               "mdi6.code-json"),
    ActionSpec("export_measurements_sr", "Measure", "Export Measurements as DICOM SR…", "",
               "mdi6.file-document-outline"),
    ActionSpec("tag_browser", "Tools", "DICOM Tags…", "Ctrl+T", "mdi6.tag-text-outline", toolbar=True),
    ActionSpec("shortcuts", "Help", "Keyboard Shortcuts", "Ctrl+/", "mdi6.keyboard"),
    ActionSpec("about", "Help", "About", "", "mdi6.information-outline"),
)

MOUSE_GESTURES: tuple[tuple[str, str], ...] = (
    ("Right-drag", "Window/level: right/left = wider/narrower, down/up = higher/lower level"),
    ("Left-drag", "Pan; with a Measure tool: draw (angle: drag one arm, click the other end; "
                  "CTR: drag the heart width, then the thorax width)"),
    ("Left-drag on a measurement", "Move it (on a point: move that point); click selects it"),
    ("Wheel", "Zoom about the cursor"),
    ("Double-click", "Fit to window"),
    ("Click", "Select the view (plugins follow the selected view)"),
    ("Drop a folder or file", "Open it"),
)


def spec(key: str) -> ActionSpec:
    """The action with this key; KeyError lists the known keys."""
    for item in ACTIONS:
        if item.key == key:
            return item
    raise KeyError(f"no action {key!r}; known: {[a.key for a in ACTIONS]}")
