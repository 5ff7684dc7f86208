"""The viewer with its CXR-CLIP plugin works in an install without torch or transformers.

A fresh interpreter makes ``import torch`` and ``import transformers`` fail (a
``sys.meta_path`` finder, as if they were not installed), then runs what
``cxrclip-viewer`` runs: the main window with the plugins from their entry
points, the sample study and the bundled demo model (ONNX exports), offscreen.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "assets" / "sample_studies" / "01_normal"
DEMO = ROOT / "assets" / "models" / "cxrclip-demo"

BLOCK = '''
import importlib.abc, sys
class NoTrainExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTrainExtras())
'''

APP = BLOCK + '''
import json, tempfile, time
from pathlib import Path
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from viewer.qt.main_window import MainWindow

app = QApplication([])
settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
win = MainWindow(settings=settings)
win.show()
def plugin():
    return next((a.plugin for a in win.plugin_host.registry.active if a.manifest.name == "CXR-CLIP findings"), None)
deadline = time.time() + 240
while plugin() is None and time.time() < deadline:
    app.processEvents(); time.sleep(0.005)
p = plugin()
win.open_path(sys.argv[1])
tree, model = p.findings_panel.tree, p.controller
while tree.topLevelItemCount() == 0 and not model.model_error and time.time() < deadline:
    app.processEvents(); time.sleep(0.005)
print(json.dumps({"findings": [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())],
                  "runtime": model.service.engine.runtime if model.service else None,
                  "model_error": model.model_error, "views": len(win.image_views()),
                  "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}))
win.plugin_host.shutdown()
'''

LOAD = BLOCK + '''
import json
from plugins.cxrclip_findings.service import FindingsService, ModelLoadError
try:
    FindingsService.load(sys.argv[1])
    print(json.dumps({"error": None}))
except ModelLoadError as exc:
    print(json.dumps({"error": str(exc)}))
'''


def _run(code: str, *args: str, tmp_path: Path, **env: str) -> dict:
    environ = dict(os.environ, QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1",
                   CXRCLIP_CACHE_DIR=str(tmp_path / "cache"), CXRCLIP_DATA_DIR=str(tmp_path / "data"),
                   PYTHONPATH=str(ROOT), **env)
    environ.pop("CXRCLIP_RUNTIME", None)
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=environ, capture_output=True,
                         text=True, timeout=280)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert out.returncode == 0 and lines, out.stdout[-2000:] + out.stderr[-4000:]
    return json.loads(lines[-1])


@pytest.mark.slow
def test_viewer_shows_findings_without_torch(tmp_path):
    result = _run(APP, str(STUDY), tmp_path=tmp_path, CXRCLIP_MODEL=str(DEMO))
    assert result["model_error"] == ""
    assert result["runtime"] == "onnx"
    assert result["views"] == 2
    assert len(result["findings"]) == 14  # the 13 CheXpert findings and No Finding
    assert any(f.startswith("No Finding") for f in result["findings"])
    assert result["torch"] is False and result["transformers"] is False


def test_folder_without_onnx_exports_names_the_train_extra(tmp_path):
    """A model folder that only torch can run: the Model panel's message names the extra and the fix."""
    import shutil

    model = tmp_path / "no-onnx"
    shutil.copytree(DEMO, model, ignore=shutil.ignore_patterns("onnx"))
    result = _run(LOAD, str(model), tmp_path=tmp_path)
    assert result["error"] is not None
    assert "pip install 'cxrclip-viewer[train]'" in result["error"]
    assert f"cxrclip export-onnx {model}" in result["error"]
    assert "onnx/image.onnx is missing" in result["error"]
    assert "TorchUnavailable" in result["error"]


@pytest.mark.parametrize("argv, what", [(["train", "config.yaml"], "`cxrclip train`"),
                                        (["convert-official", "a.tar", "out", "--text-encoder", "t"],
                                         "`cxrclip convert-official`"),
                                        (["export-onnx", str(DEMO)], "`cxrclip export-onnx`")])
def test_cli_without_torch_names_the_train_extra(tmp_path, argv, what):
    code = BLOCK + "from cxrclip.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    environ = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, env=environ, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (f"cxrclip: {what} needs the training extras (torch is not installed): "
                                  "pip install 'cxrclip-viewer[train]'")
    assert "Traceback" not in out.stderr
