"""``cxrclip export-onnx``: write a model folder's towers as ONNX graphs for `cxrclip.runtime_onnx`.

The graphs are exported in float32 with ``torch.onnx.export(..., dynamo=True)`` (the
TorchScript exporter, ``dynamo=False``, gave wrong numbers for BERT and ResNet in torch
2.13: max |diff| 0.05 and 0.35 on the demo model), with a dynamic batch axis (and a
dynamic sequence axis for text). Weights that a float16 model folder stored as float16
are kept as float16 initialisers followed by a Cast to float32: exactly the values the
torch runtime computes with, at half the file size (ONNX Runtime folds the Casts when
the session starts). ``onnx/export.json`` records the opset, the versions, and a parity
check against torch on fixed inputs; the export is refused when parity fails. The folder's
``MANIFEST.sha256`` is rewritten to cover the new files.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cxrclip.runtime_onnx import (EXPORT_FILE, EXPORT_FORMAT, IMAGE_FILE, ONNX_DIR, TEXT_FILE, TOKENIZER_FILE,
                                  OnnxTowers)

DEFAULT_OPSET = 18
# Export is refused beyond these (torch vs ONNX Runtime on the parity inputs, float32 on CPU).
PARITY_TOLERANCE = {"embedding_max_abs": 1e-4, "feature_map_max_rel": 1e-4, "probability_max_abs": 1e-4,
                    "cosine_min": 0.99999}
PARITY_TEXTS = ("small left pleural effusion", "no pleural effusion", "cardiomegaly",
                "there is a large right-sided pneumothorax with leftward mediastinal shift and "
                "collapse of the right lung, findings discussed with the referring physician",
                "no acute cardiopulmonary process")
_MIN_FP16_ELEMENTS = 256  # smaller tensors are not worth a Cast node


class ImageTower(nn.Module):
    """pixels -> (normalised embedding, projected feature map): one graph, shared backbone."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode_image(pixels, normalize=True), self.model.image_feature_map(pixels)


class TextTower(nn.Module):
    """(input_ids, attention_mask) -> normalised text embedding."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(input_ids, attention_mask, normalize=True)


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def parity_pixels(image_size: int, batch: int = 2) -> np.ndarray:
    """Fixed model inputs (batch, 3, S, S): a smooth gradient and seeded noise, both in the normalised range."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(-2.0, 2.0, image_size, dtype=np.float32)
    smooth = np.broadcast_to(ramp[None, :, None] + 0.5 * ramp[None, None, :], (3, image_size, image_size))
    rows = [smooth] + [rng.standard_normal((3, image_size, image_size)).astype(np.float32) for _ in range(batch - 1)]
    return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


def _export_graph(module: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
                  dynamic_shapes: dict[str, dict[int, str]], opset: int) -> None:
    import logging
    import warnings

    # The exporter logs one warning per torchvision op it cannot register (torchvision is not needed).
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter progress chatter and deprecation notes
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_shapes=dynamic_shapes, opset_version=opset, dynamo=True, verbose=False,
                          external_data=False)


def shrink_exact_fp16(model: Any) -> int:
    """Store float32 initialisers that are exactly float16 values as float16 + Cast; returns how many.

    Lossless by construction: a tensor is converted only when float16 -> float32 gives
    back every value bit for bit.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name in graph_inputs:
            kept.append(init)
            continue
        values = numpy_helper.to_array(init)
        with np.errstate(over="ignore"):  # values beyond float16's range fail the exactness test below
            half = values.astype(np.float16)
        if values.size < _MIN_FP16_ELEMENTS or not np.array_equal(half.astype(np.float32), values):
            kept.append(init)
            continue
        kept.append(numpy_helper.from_array(half, init.name + "__fp16"))
        casts.append(helper.make_node("Cast", [init.name + "__fp16"], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__cast"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)


def _finish_graph(path: Path) -> int:
    """Shrink exact-float16 weights, check the graph, and save it as one file."""
    import onnx

    model = onnx.load(str(path))
    count = shrink_exact_fp16(model)
    onnx.checker.check_model(model)
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    onnx.save_model(model, str(path))
    return count


def _save_tokenizer(tokenizer: Any, path: Path) -> tuple[int, str]:
    """The fast tokenizer's ``tokenizer.json`` with padding/truncation off; returns (pad id, pad token)."""
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"the model's tokenizer ({type(tokenizer).__name__}) is not a fast tokenizer; "
                         "save the text encoder with a tokenizer.json and export again")
    if tokenizer.pad_token_id is None or tokenizer.pad_token is None:
        raise ValueError("the model's tokenizer has no padding token; the ONNX runtime pads batches with it")
    copy = Tokenizer.from_str(backend.to_str())
    copy.no_padding()
    copy.no_truncation()
    copy.save(str(path))
    return int(tokenizer.pad_token_id), str(tokenizer.pad_token)


def _eager_image_attention(model: nn.Module) -> None:
    """Switch transformers image encoders (Swin) to eager attention for export.

    With SDPA attention the exporter's decomposition step fails on Swin in torch 2.13
    ("Cannot view a tensor with shape ..."); eager attention computes the same numbers.
    """
    for module in model.image_encoder.modules():
        if hasattr(module, "set_attn_implementation") and hasattr(module, "config"):
            module.set_attn_implementation("eager")


def _export_towers(model: nn.Module, tokenizer: Any, out: Path, opset: int) -> dict[str, int]:
    _eager_image_attention(model)
    size = int(model.config.image.image_size)
    pixels = torch.from_numpy(parity_pixels(size))
    tokens = tokenizer(list(PARITY_TEXTS[:2]), padding="longest", return_tensors="pt")
    batch = {0: "batch"}
    _export_graph(ImageTower(model).eval(), (pixels,), out / IMAGE_FILE, ["pixels"], ["image_embedding", "feature_map"],
                  {"pixels": batch}, opset)
    _export_graph(TextTower(model).eval(), (tokens["input_ids"], tokens["attention_mask"]), out / TEXT_FILE,
                  ["input_ids", "attention_mask"], ["text_embedding"],
                  {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}, opset)
    return {IMAGE_FILE: _finish_graph(out / IMAGE_FILE), TEXT_FILE: _finish_graph(out / TEXT_FILE)}


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return float(cos.min())


def parity_check(torch_towers: Any, onnx_towers: Any, image_size: int, max_length: int) -> dict[str, Any]:
    """Max differences between two `cxrclip.towers.Towers` on the fixed parity inputs."""
    from cxrclip.engine import binary_probability

    pixels = parity_pixels(image_size, batch=3)
    texts = list(PARITY_TEXTS)
    ids_t, mask_t = torch_towers.tokenize(texts, max_length)
    ids_o, mask_o = onnx_towers.tokenize(texts, max_length)
    img_t, img_o = torch_towers.encode_image(pixels), onnx_towers.encode_image(pixels)
    fmap_t, fmap_o = torch_towers.image_feature_map(pixels), onnx_towers.image_feature_map(pixels)
    txt_t, txt_o = torch_towers.encode_text(ids_t, mask_t), onnx_towers.encode_text(ids_t, mask_t)
    prob_t = binary_probability(img_t @ txt_t[0], img_t @ txt_t[1], torch_towers.logit_scale)
    prob_o = binary_probability(img_o @ txt_o[0], img_o @ txt_o[1], onnx_towers.logit_scale)
    return {
        "inputs": f"{len(pixels)} images {image_size}px (gradient + seeded noise), {len(texts)} texts",
        "token_ids_identical": bool(ids_t.shape == ids_o.shape and (ids_t == ids_o).all() and (mask_t == mask_o).all()),
        "image_embedding_max_abs": _max_abs(img_t, img_o),
        "image_embedding_min_cosine": _min_cosine(img_t, img_o),
        "feature_map_max_rel": _max_abs(fmap_t, fmap_o) / max(float(np.abs(fmap_t).max()), 1e-12),
        "text_embedding_max_abs": _max_abs(txt_t, txt_o),
        "text_embedding_min_cosine": _min_cosine(txt_t, txt_o),
        "probability_max_abs": _max_abs(prob_t, prob_o),
    }


def parity_failures(parity: dict[str, Any]) -> list[str]:
    """The parity figures outside `PARITY_TOLERANCE` (empty when all pass)."""
    tol = PARITY_TOLERANCE
    bad = [] if parity["token_ids_identical"] else ["token ids differ"]
    for key in ("image_embedding_max_abs", "text_embedding_max_abs"):
        if not parity[key] <= tol["embedding_max_abs"]:
            bad.append(f"{key} {parity[key]:.3g} > {tol['embedding_max_abs']}")
    for key in ("image_embedding_min_cosine", "text_embedding_min_cosine"):
        if not parity[key] >= tol["cosine_min"]:
            bad.append(f"{key} {parity[key]:.7f} < {tol['cosine_min']}")
    if not parity["feature_map_max_rel"] <= tol["feature_map_max_rel"]:
        bad.append(f"feature_map_max_rel {parity['feature_map_max_rel']:.3g} > {tol['feature_map_max_rel']}")
    if not parity["probability_max_abs"] <= tol["probability_max_abs"]:
        bad.append(f"probability_max_abs {parity['probability_max_abs']:.3g} > {tol['probability_max_abs']}")
    return bad


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _versions() -> dict[str, str | None]:
    return {"torch": torch.__version__, **{name: _package_version(name) for name in
                                           ("onnx", "onnxruntime", "onnxscript", "tokenizers", "transformers")}}


def _install(tmp: Path, model_dir: Path) -> None:
    """Swap ``tmp`` into ``model_dir/onnx`` (readable by all) and rewrite the folder's manifest."""
    from cxrclip.manifest import write_manifest

    tmp.chmod(0o755)
    for path in tmp.iterdir():
        path.chmod(0o644)
    target = model_dir / ONNX_DIR
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=".onnx.old-", dir=model_dir))
        os.replace(target, old / ONNX_DIR)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    write_manifest(model_dir)


def export_onnx(model_dir: str | Path, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Export ``model_dir``'s towers to ``model_dir/onnx/`` (see the module docstring); returns export.json.

    Raises `cxrclip.checkpoint.ModelFolderError` for an unusable folder and ``ValueError``
    when the exported graphs fail the parity check (nothing is written then).
    """
    from cxrclip.checkpoint import load_model
    from cxrclip.towers import TorchTowers

    if not 13 <= int(opset) <= 23:
        raise ValueError(f"--opset must be between 13 and 23, got {opset}")
    model_dir = Path(model_dir)
    loaded = load_model(model_dir, "cpu")  # checks the folder; float32 weights whatever the file stores
    model = loaded.model.float().eval()
    config = loaded.config
    tmp = Path(tempfile.mkdtemp(prefix=".onnx.tmp-", dir=model_dir))
    try:
        fp16 = _export_towers(model, loaded.tokenizer, tmp, int(opset))
        pad_id, pad_token = _save_tokenizer(loaded.tokenizer, tmp / TOKENIZER_FILE)
        torch_towers = TorchTowers(model, loaded.tokenizer, "cpu", "float32")
        info: dict[str, Any] = {
            "format": EXPORT_FORMAT, "model_id": loaded.model_id, "logit_scale": torch_towers.logit_scale,
            "pad_token_id": pad_id, "pad_token": pad_token, "max_length": int(config.text.max_length),
            "image_size": int(config.image.image_size), "opset": int(opset),
            "exporter": "torch.onnx.export(dynamo=True), float32", "versions": _versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "float16_initializers": fp16,
            "files": {name: (tmp / name).stat().st_size for name in (IMAGE_FILE, TEXT_FILE, TOKENIZER_FILE)},
        }
        onnx_towers = OnnxTowers(tmp, info, int(config.text.max_length), "cpu")
        parity = parity_check(torch_towers, onnx_towers, int(config.image.image_size), int(config.text.max_length))
        info["parity"] = {**parity, "tolerance": PARITY_TOLERANCE}
        failures = parity_failures(parity)
        if failures:
            raise ValueError(f"the ONNX export of {model_dir} does not match torch: {'; '.join(failures)}; "
                             "nothing was written (try another --opset)")
        _write_json(tmp / EXPORT_FILE, info)
        _install(tmp, model_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def expand_fp16(model: Any) -> int:
    """Undo `shrink_exact_fp16`: float16 initialisers + Cast back to plain float32 initialisers."""
    from onnx import numpy_helper

    graph = model.graph
    halves = {i.name: i for i in graph.initializer if i.name.endswith("__fp16")}
    casts = [n for n in graph.node if n.op_type == "Cast" and len(n.input) == 1 and n.input[0] in halves]
    restored = [numpy_helper.from_array(numpy_helper.to_array(halves[n.input[0]]).astype(np.float32), n.output[0])
                for n in casts]
    kept = [i for i in graph.initializer if i.name not in halves] + restored
    nodes = [n for n in graph.node if not (n.op_type == "Cast" and len(n.input) == 1 and n.input[0] in halves)]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.node[:]
    graph.node.extend(nodes)
    return len(casts)


def quantize_text_int8(source: str | Path, target: str | Path) -> Path:
    """Int8 dynamic quantisation (per-tensor int8 weights of MatMul/Gemm, onnxruntime.quantization) of a text graph."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    expand_fp16(model)  # quantize_dynamic only quantises weights that are initialisers
    quantize_dynamic(model, str(target), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)
    return Path(target)
