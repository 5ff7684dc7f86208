"""The command-line entry point, drag and drop, and the Qt-free parts staying Qt-free."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent


@pytest.mark.slow
def test_cli_saves_screenshot_after_first_study(study_dir, tmp_path):
    """``cxrclip-viewer PATH --screenshot FILE`` in a subprocess (app.exec() ends the event loop).

    What the launch built is frozen for the garbage collector (a full collection of it held
    the UI thread for 70-90 ms)."""
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    run_app = ("import gc, sys; from viewer.app import main; rc = main(sys.argv[1:]); "
               "print('frozen objects', gc.get_freeze_count()); sys.exit(rc)")
    result = subprocess.run(
        [sys.executable, "-c", run_app, str(study_dir), "--no-plugins", "--hide-phi",
         "--screenshot", str(out), "--size", "900x600", "--screenshot-delay", "0.05",
         "--screenshot-timeout", "60"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    shot = np.asarray(Image.open(out).convert("L"))
    assert shot.shape[1] >= 900 and shot.std() > 10
    assert "screenshot saved" in result.stderr
    assert int(result.stdout.split("frozen objects")[-1]) > 10000


def test_drop_folder_opens_it(qtbot, window, study_dir):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(study_dir))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: len(window.image_views()) == 2, timeout=10000)


def test_plugin_api_and_host_do_not_import_qt():
    code = ("import sys, viewer.plugin_api, viewer.plugin_host, plugins.histogram.manifest; "
            "print(any(m.startswith('PySide6') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_phi_options_are_exclusive_and_default_to_the_saved_setting(capsys):
    from viewer.app import build_parser

    parser = build_parser()
    assert not parser.parse_args([]).hide_phi and not parser.parse_args([]).show_phi
    assert parser.parse_args(["--show-phi"]).show_phi
    with pytest.raises(SystemExit):
        parser.parse_args(["--hide-phi", "--show-phi"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_default_window_fits_a_small_screen() -> None:
    """The 1500 x 950 default is shrunk to a 1366 x 768 laptop's available area, never grown."""
    from viewer.qt.main_window import DEFAULT_SIZE, fit_to_screen

    assert fit_to_screen(DEFAULT_SIZE, (1366, 728)) == (1366, 728)
    assert fit_to_screen(DEFAULT_SIZE, (1920, 1040)) == DEFAULT_SIZE
