"""Benchmark scripts imported from their files for their smoke tests (benchmarks/ is not a package)."""
from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def script_module(name: str) -> Iterator[ModuleType]:
    """``benchmarks/<name>.py`` as a module, registered in sys.modules while in use (dataclasses
    look their module up there); yields it, then unregisters it. Use inside a fixture."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)
