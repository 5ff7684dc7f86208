"""The import_time_forbidden contract (tests/import_time_contract.py) sees exactly the imports that run on import."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("import_time_contract", Path(__file__).with_name("import_time_contract.py"))
contract = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("import_time_contract", contract)
_spec.loader.exec_module(contract)

SOURCE = '''\
import numpy
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import torch
try:
    import onnx
except ImportError:
    import cv2
def f():
    import transformers
class C:
    def g(self):
        from safetensors import x
if True:
    import sklearn
'''


def test_module_level_lines_are_the_imports_that_run_on_import():
    lines = contract._module_level_lines(ast.parse(SOURCE).body)
    assert lines == {1, 2, 6, 8, 15}  # numpy, typing, onnx, cv2, sklearn; not torch/transformers/safetensors


def test_engine_imports_torch_only_inside_functions():
    lines = contract.import_time_lines("cxrclip.engine")
    source = Path(importlib.util.find_spec("cxrclip.engine").origin).read_text().splitlines()
    assert lines and not any("torch" in source[n - 1] for n in lines)
    assert any("import torch" in s for s in source)  # it does import torch, lazily
