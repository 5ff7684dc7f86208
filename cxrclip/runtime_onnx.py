"""The ONNX Runtime towers: a model folder's ``onnx/`` exports, run without torch or transformers.

Layout written by `cxrclip.onnx_export.export_onnx` (``cxrclip export-onnx``)::

    onnx/image.onnx      pixels (B, 3, S, S) float32 -> image_embedding (B, D) normalised,
                         feature_map (B, D, h, w) projected, not normalised
    onnx/text.onnx       input_ids, attention_mask (B, L) int64 -> text_embedding (B, D) normalised
    onnx/tokenizer.json  the text encoder's fast tokenizer (``tokenizers``), padding/truncation off
    onnx/export.json     model_id, logit_scale, padding, opset, versions, parity check at export

This module imports only numpy, ``onnxruntime`` and ``tokenizers`` (and the torch-free
parts of cxrclip: config, manifest, checkpoint's folder checks, preprocess).
"""
from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ONNX_DIR = "onnx"
IMAGE_FILE = "image.onnx"
TEXT_FILE = "text.onnx"
TOKENIZER_FILE = "tokenizer.json"
EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1
ONNX_FILES = (IMAGE_FILE, TEXT_FILE, TOKENIZER_FILE, EXPORT_FILE)


class OnnxUnavailable(ValueError):
    """`Engine.load(runtime="onnx")` on a folder without usable exports (message names the fix)."""


def _export_hint(model_dir: Path) -> str:
    return f"Run `cxrclip export-onnx {model_dir}` (needs torch), or load with runtime='torch'."


def read_export_info(model_dir: Path) -> dict[str, Any]:
    """Parsed ``onnx/export.json``; raises `OnnxUnavailable` naming the file when it is unusable."""
    path = Path(model_dir) / ONNX_DIR / EXPORT_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OnnxUnavailable(f"{path} cannot be read ({type(exc).__name__}).\n{_export_hint(model_dir)}") from None
    if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT:
        raise OnnxUnavailable(f"{path} is not an export record of format {EXPORT_FORMAT}.\n{_export_hint(model_dir)}")
    return info


def _config_model_id(model_dir: Path) -> str | None:
    try:
        data = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data.get("model_id") if isinstance(data, dict) else None


def unavailable_reason(model_dir: str | Path, dtype: Any = "float32") -> str:
    """Why the ONNX runtime cannot serve ``model_dir`` ("" when it can). Cheap: no file is hashed."""
    model_dir = Path(model_dir)
    if str(dtype).removeprefix("torch.") != "float32":
        return f"dtype {dtype!r} asks for the torch runtime (the ONNX exports are float32)"
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tokenizers") is None:
        return "onnxruntime or tokenizers is not installed (pip install onnxruntime tokenizers)"
    missing = [name for name in ONNX_FILES if not (model_dir / ONNX_DIR / name).is_file()]
    if missing:
        return f"{model_dir / ONNX_DIR / missing[0]} is missing. {_export_hint(model_dir)}"
    try:
        info = read_export_info(model_dir)
    except OnnxUnavailable as exc:
        return str(exc).replace("\n", " ")
    if info.get("model_id") != _config_model_id(model_dir):
        return (f"{model_dir / ONNX_DIR / EXPORT_FILE} was exported from model {info.get('model_id')!r}, "
                f"not this folder's {_config_model_id(model_dir)!r}. {_export_hint(model_dir)}")
    return ""


def providers_for(device: Any, available: list[str]) -> tuple[list[Any], str]:
    """ONNX Runtime execution providers for ``device`` ('auto', 'cpu', 'cuda', 'cuda:N') and its name."""
    name = str(device)
    cuda = "CUDAExecutionProvider" in available
    if name == "auto":
        name = "cuda" if cuda else "cpu"
    if name == "cpu":
        return ["CPUExecutionProvider"], "cpu"
    if name.startswith("cuda"):
        if not cuda:
            raise ValueError(f"device {device!r}: onnxruntime has no CUDAExecutionProvider here "
                             "(install onnxruntime-gpu, or use device='cpu')")
        index = int(name.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"], f"cuda:{index}"
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' for the ONNX runtime, got {device!r}")


def session_options(num_threads: int | None, optimization: str = "all") -> Any:
    """ONNX Runtime session options: intra-op threads, graph optimisation level, no spinning.

    ORT's worker threads busy-wait after each run by default (good for a server that runs
    back to back). Here each session (image, text) has its own pool, and the caller is a
    viewer: the spinning workers of one session took the cores from the other (an image
    forward then a text forward of the paper-sized model: 156-178 ms spinning, 80-82 ms not)
    and from the UI thread (a 20 ms Python loop right after a text run: 2.0 cores busy
    spinning, 1.55 not), at no gain for a single run (benchmarks/RESULTS.md, 2026-12-02).
    """
    import onnxruntime as ort

    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {list(levels)}, got {optimization!r}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    options.log_severity_level = 3  # errors only; ORT's warnings about unused initialisers are noise here
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if num_threads is not None:
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
    return options


class OnnxTokenizer:
    """``tokenizers`` fast tokenizer: pads to the longest text, truncates to ``max_length``.

    The tokenizer file is parsed at the first call, not when the model loads: parsing
    holds the GIL (40 ms idle, 200 ms on a busy two-core machine), which would freeze the
    viewer's window during launch, and a study's first findings come from the cached
    prompt embeddings without it. A missing file still fails the model load, and a
    damaged one fails its MANIFEST.sha256 check there.
    """

    def __init__(self, path: Path, pad_id: int, pad_token: str, max_length: int):
        self._path, self._pad_id, self._pad_token = Path(path), int(pad_id), str(pad_token)
        self._max_length = int(max_length)
        self._tokenizer: Any = None
        self._lock = threading.Lock()  # loading and truncation (tokenizer state) happen under it
        if not self._path.is_file():
            raise FileNotFoundError(f"tokenizer file missing: {self._path}")

    def _loaded(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self._path))
            tokenizer.enable_padding(pad_id=self._pad_id, pad_token=self._pad_token)
            tokenizer.enable_truncation(self._max_length)
            self._tokenizer = tokenizer
        return self._tokenizer

    def __call__(self, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            self._loaded()
            if int(max_length) != self._max_length:
                self._max_length = int(max_length)
                self._tokenizer.enable_truncation(self._max_length)
            encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def __len__(self) -> int:
        with self._lock:
            return int(self._loaded().get_vocab_size())


class OnnxTowers:
    """`cxrclip.towers.Towers` on ONNX Runtime sessions of a folder's ``onnx/`` exports."""

    runtime = "onnx"
    dtype = "float32"
    model = None

    def __init__(self, onnx_dir: Path, info: dict[str, Any], max_length: int, device: Any = "auto",
                 num_threads: int | None = None, optimization: str = "all", text_file: str = TEXT_FILE):
        import onnxruntime as ort

        providers, self.device = providers_for(device, ort.get_available_providers())
        options = session_options(num_threads, optimization)

        def session(name: str) -> Callable[[], Any]:
            return lambda: ort.InferenceSession(str(onnx_dir / name), options, providers=providers)

        # Building a session reads and optimises the graph without holding the GIL. The text
        # session (the larger) is built on its own thread and waited for at its first use:
        # with the prompt embeddings cached, a study's first findings need only the image one.
        self._text_session = Deferred(session(text_file), "cxrclip-onnx-text-session")
        self.image_session = session(IMAGE_FILE)()
        self.tokenizer = OnnxTokenizer(onnx_dir / TOKENIZER_FILE, info["pad_token_id"], info["pad_token"],
                                       max_length)
        self.logit_scale = float(info["logit_scale"])
        self.info = info

    @property
    def text_session(self) -> Any:
        """The text tower's session (waits while it is still being built)."""
        return self._text_session.get()

    def tokenize(self, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        return self.tokenizer(texts, max_length)

    def encode_text(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": np.asarray(input_ids, np.int64), "attention_mask": np.asarray(attention_mask, np.int64)}
        return self.text_session.run(["text_embedding"], feeds)[0]

    def encode_image(self, pixels: np.ndarray) -> np.ndarray:
        return self.image_session.run(["image_embedding"], {"pixels": np.asarray(pixels, np.float32)})[0]

    def image_feature_map(self, pixels: np.ndarray) -> np.ndarray:
        return self.image_session.run(["feature_map"], {"pixels": np.asarray(pixels, np.float32)})[0]

    def encode_image_and_mean_map(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embedding, fmap = self.image_session.run(["image_embedding", "feature_map"],
                                                 {"pixels": np.asarray(pixels, np.float32)})
        return embedding, fmap.mean(axis=(2, 3), dtype=np.float64).astype(np.float32)


def load_towers(model_dir: str | Path, device: Any = "auto", num_threads: int | None = None,
                optimization: str = "all") -> tuple[OnnxTowers, Any, str]:
    """(towers, ModelConfig, model_id) of a model folder with ONNX exports.

    Runs the folder checks that need no torch (config.json, MANIFEST.sha256, which covers
    the ONNX files too) and raises `cxrclip.checkpoint.ModelFolderError` / `OnnxUnavailable`.
    """
    from cxrclip.checkpoint import CONFIG_FILE, _check_manifest, _model_config, read_config

    model_dir = Path(model_dir)
    data = read_config(model_dir)
    reason = unavailable_reason(model_dir)
    if reason:
        raise OnnxUnavailable(reason)
    config = _model_config(data, model_dir / CONFIG_FILE)
    info = read_export_info(model_dir)

    def towers() -> OnnxTowers:
        return OnnxTowers(model_dir / ONNX_DIR, info, config.text.max_length, device, num_threads, optimization)

    # The manifest's hashes (~100 MB read) are checked while the sessions are built (both
    # release the GIL); nothing built is returned unless the check passed, and a failed
    # check is the error raised even when a damaged file also broke a session.
    _checked, built = run_together(lambda: _check_manifest(model_dir), towers)
    return built, config, str(info["model_id"])


class Deferred:
    """A value built by ``build()`` on a background thread; `get` waits for it (re-raising the
    build's error, every time it is asked). The thread is not a daemon: a process that ends
    while ONNX Runtime is still building a session waits for it, because tearing the
    interpreter down under the build aborted the process (std::bad_alloc, exit status 134)."""

    def __init__(self, build: Callable[[], Any], name: str) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._done = threading.Event()

        def run() -> None:
            try:
                self._value = build()
            except BaseException as exc:  # noqa: BLE001 - raised by get() on the caller's thread
                self._error = exc
            finally:
                self._done.set()

        threading.Thread(target=run, name=name, daemon=False).start()

    def get(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


def run_together(*fns: Callable[[], Any]) -> list[Any]:
    """Call ``fns`` at the same time (the first on this thread, the others on threads) and
    return their results in order. When any raised, the first one's error (in argument
    order) is raised once all have finished."""
    results: list[Any] = [None] * len(fns)
    errors: list[BaseException | None] = [None] * len(fns)

    def call(index: int) -> None:
        try:
            results[index] = fns[index]()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors[index] = exc

    threads = [threading.Thread(target=call, args=(i,), name="cxrclip-onnx-load", daemon=True)
               for i in range(1, len(fns))]
    for thread in threads:
        thread.start()
    call(0)
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


def load_engine(engine_cls: Any, model_dir: Path, device: Any, num_threads: int | None, **kwargs: Any) -> Any:
    """`engine_cls.from_towers` over `load_towers` (used by `Engine.load`); ``dtype`` must be float32."""
    kwargs.pop("dtype", None)  # checked by unavailable_reason: float32 only
    towers, config, model_id = load_towers(model_dir, device, num_threads)
    return engine_cls.from_towers(towers, config, model_id, **kwargs)
