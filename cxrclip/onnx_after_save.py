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
    """`cxrclip.onnx_export.export_onnx` on ``model_dir``; its export.json, or None after one warning."""
    try:
        from cxrclip import onnx_export

        return onnx_export.export_onnx(model_dir)
    except Exception as exc:  # noqa: BLE001 - any exporter failure (missing onnxscript, parity) keeps the model
        reason = str(exc).splitlines()[0] if str(exc) else ""
        log.warning("saved %s, but its ONNX export failed (%s: %s); the model works with the torch runtime. "
                    "Retry with: %s", model_dir, type(exc).__name__, reason, retry_hint(model_dir))
        return None
