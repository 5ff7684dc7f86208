"""Write a just-saved model folder's ONNX exports, or warn once how to retry: never fails the save.

Used by ``cxrclip convert-official``, ``cxrclip train`` (the model folder users load) and
the demo-model build. The saved weights stay usable whatever happens here: without
exports `cxrclip.engine.Engine.load(runtime="auto")` uses torch.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("cxrclip.onnx_export")


def retry_hint(model_dir: str | Path) -> str:
    return f"cxrclip export-onnx {model_dir}"


def export_onnx_or_warn(model_dir: str | Path) -> dict[str, Any] | None:
    """`cxrclip.onnx_export.export_onnx` on ``model_dir``, then its zero-shot prompt embeddings
    (`cxrclip.prompt_cache.ship_with_onnx_exports`); the export.json, or None after one warning."""
    try:
        from cxrclip import onnx_export

        info = onnx_export.export_onnx(model_dir)
    except Exception as exc:  # noqa: BLE001 - any exporter failure (missing onnxscript, parity) keeps the model
        _warn(model_dir, "its ONNX export failed", exc, "the model works with the torch runtime")
        return None
    try:
        from cxrclip.prompt_cache import ship_with_onnx_exports

        ship_with_onnx_exports(model_dir)
    except Exception as exc:  # noqa: BLE001 - without the file the viewer only encodes the prompts itself
        _warn(model_dir, "its prompt embeddings were not written", exc,
              "the viewer encodes the prompts on its first launch")
    return info


def _warn(model_dir: str | Path, what: str, exc: Exception, consequence: str) -> None:
    reason = str(exc).splitlines()[0] if str(exc) else ""
    log.warning("saved %s, but %s (%s: %s); %s. Retry with: %s", model_dir, what, type(exc).__name__,
                reason, consequence, retry_hint(model_dir))
