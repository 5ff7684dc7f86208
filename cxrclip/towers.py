"""The encoders below `cxrclip.Engine`: one interface, two runtimes.

The engine keeps every piece of logic above the encoders (caches, scores,
zero-shot, similarity maps) and calls a ``Towers`` object for the network work:

- ``tokenize(texts, max_length)`` -> ``(input_ids, attention_mask)``, int64 (B, L),
  padded to the longest text and truncated to ``max_length``;
- ``encode_text(input_ids, attention_mask)`` -> L2-normalised embeddings (B, D) float32;
- ``encode_image(pixels)`` -> L2-normalised embeddings (B, D) float32 from
  preprocessed pixels (B, 3, S, S) float32 (`cxrclip.preprocess.preprocess_array`);
- ``image_feature_map(pixels)`` -> projected, un-normalised per-location embeddings
  (B, D, h, w) float32 (what `Engine.similarity_map` needs);
- ``encode_image_and_mean_map(pixels)`` -> (the ``encode_image`` embeddings, the spatial
  mean of the ``image_feature_map``), both (B, D) float32, from one image-tower pass
  (the mean map is what the out-of-distribution guard scores, `cxrclip.ood`);
- ``logit_scale``: the multiplier exp(logit_scale), clamped at 100;
- ``runtime`` ("torch" or "onnx"), ``device`` and ``dtype`` for reports.

`TorchTowers` (this module) runs the `CXRClip` torch model; ``OnnxTowers``
(`cxrclip.runtime_onnx`) runs the ONNX exports with ONNX Runtime and
``tokenizers`` and imports neither torch nor transformers. Importing this module
does not import torch either: `TorchTowers` imports it when built.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

MAX_LOGIT_SCALE = 100.0


class Towers(Protocol):
    """What `cxrclip.Engine` needs from a runtime (see the module docstring)."""

    runtime: str
    device: Any
    dtype: Any
    logit_scale: float

    def tokenize(self, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]: ...

    def encode_text(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...

    def encode_image(self, pixels: np.ndarray) -> np.ndarray: ...

    def image_feature_map(self, pixels: np.ndarray) -> np.ndarray: ...

    def encode_image_and_mean_map(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TorchTowers:
    """The towers of a loaded `CXRClip` torch model, on ``device`` in ``dtype``."""

    runtime = "torch"

    def __init__(self, model: Any, tokenizer: Any, device: Any = "cpu", dtype: Any = "float32"):
        """Move ``model`` to ``device`` and cast it to ``dtype`` in place (eval mode)."""
        from cxrclip.engine import resolve_device, resolve_dtype

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        # Read before any cast: the scale would lose digits in bfloat16.
        self.logit_scale = float(min(model.logit_scale.detach().float().exp().item(), MAX_LOGIT_SCALE))
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer

    def tokenize(self, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        tokens = self.tokenizer(list(texts), padding="longest", truncation=True, max_length=max_length,
                                return_tensors="np")
        return (np.asarray(tokens["input_ids"], dtype=np.int64),
                np.asarray(tokens["attention_mask"], dtype=np.int64))

    def encode_text(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        ids = torch.from_numpy(np.asarray(input_ids, dtype=np.int64)).to(self.device)
        mask = torch.from_numpy(np.asarray(attention_mask, dtype=np.int64)).to(self.device)
        with torch.inference_mode():
            return self.model.encode_text(ids, mask, normalize=True).float().cpu().numpy()

    def _pixels(self, pixels: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).to(self.device, self.dtype)

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.encode_image(self._pixels(pixels), normalize=True).float().cpu().numpy()

    def image_feature_map(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.image_feature_map(self._pixels(pixels)).float().cpu().numpy()

    def encode_image_and_mean_map(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            embedding, fmap = self.model.encode_image_and_map(self._pixels(pixels))
            return embedding.float().cpu().numpy(), fmap.float().mean(dim=(2, 3)).cpu().numpy()
