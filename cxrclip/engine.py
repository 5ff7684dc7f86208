"""Inference engine: cached image/text embeddings, prompt scores, zero-shot, similarity maps.

This is the logic behind the viewer's CXR-CLIP plugin, usable headless:

    engine = Engine.load("assets/models/demo")
    study = StudyInput("s1", [ViewInput("pa", pa_uint8), ViewInput("lat", lat_uint8)])
    result = engine.score(study, ["small left pleural effusion"])

Scoring follows CXR-CLIP's (and CheXzero's) binary evaluation: the probability
of "X" is softmax(logit_scale * [cos(image, "no X"), cos(image, "X")])[1].
`zero_shot` is the one recipe of `cxrclip.zero_shot` (ensembles, No Finding,
views, the folder's ``calibration.json``), with each view's out-of-distribution
verdict from the folder's ``ood.json`` (`cxrclip.ood`).
All public methods are thread-safe (the plugin calls them from a worker thread).

The encoders run in one of two runtimes (`cxrclip.towers`): torch (the `CXRClip`
model) or ONNX Runtime (the folder's ``onnx/`` exports, see `cxrclip.onnx_export`).
`Engine.load(..., runtime="auto")` picks ONNX Runtime when the exports and
``onnxruntime`` are there; that path imports neither torch nor transformers.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cxrclip.towers import MAX_LOGIT_SCALE, Towers
from cxrclip.zero_shot import (FindingScore, ViewOOD, ViewScore, ZeroShotClassifier, binary_probability,
                               study_embedding)
from cxrclip.zero_shot import unit as _unit

__all__ = ["MAX_LOGIT_SCALE", "CacheInfo", "Engine", "FindingScore", "LRUCache", "PromptScore", "ScoreResult",
           "TorchUnavailable", "StudyInput", "ViewInput", "ViewOOD", "ViewScore", "binary_probability"]

if TYPE_CHECKING:
    import torch

    from cxrclip.heatmaps import OccludedEmbeddings

Aggregate = Literal["mean", "max"]
MapKind = Literal["similarity", "probability", "contribution", "occlusion", "agreement"]
Runtime = Literal["auto", "torch", "onnx"]
RUNTIMES = ("auto", "torch", "onnx")
RUNTIME_ENV = "CXRCLIP_RUNTIME"
TRAIN_EXTRA_HINT = "pip install 'cxrclip-viewer[train]'"


def runtime_from_env(default: Runtime = "auto") -> Runtime:
    """The runtime named by ``$CXRCLIP_RUNTIME`` (auto | torch | onnx), else `default`."""
    import os

    value = os.environ.get(RUNTIME_ENV, "").strip().lower()
    if not value:
        return default
    if value not in RUNTIMES:
        raise ValueError(f"{RUNTIME_ENV}={value!r} is not a runtime; use one of {', '.join(RUNTIMES)}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class ViewInput:
    """One image to score: a stable id (SOPInstanceUID or file path), 2-D pixels, label."""

    view_id: str
    pixels: np.ndarray
    label: str = ""


@dataclass(frozen=True)
class StudyInput:
    """The views of one study, scored together."""

    study_id: str
    views: list[ViewInput]


@dataclass(frozen=True)
class PromptScore:
    """A prompt's scores on every view and on the study as a whole."""

    prompt: str
    negative: str
    similarity: float
    probability: float
    views: list[ViewScore]
    familiarity: float | None = None  # highest cosine to the model's reference sentences (cxrclip.ood)
    unfamiliar: bool = False  # wording the model has not seen (cxrclip.ood: unknown words or low familiarity)
    unknown_words: tuple[str, ...] = ()  # the prompt's words absent from the model's reference text
    suggestion: str | None = None  # the prompt with those of its unknown words that are abbreviations spelled out


@dataclass(frozen=True)
class ScoreResult:
    """Result of `Engine.score`: one `PromptScore` per prompt, in input order."""

    study_id: str
    aggregate: str
    logit_scale: float
    prompts: list[PromptScore]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, ready for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class CacheInfo:
    """Counters of an `LRUCache`."""

    hits: int
    misses: int
    size: int
    maxsize: int


class LRUCache:
    """A size-bounded least-recently-used mapping with hit/miss counters (not locked)."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise ValueError(f"cache maxsize must be >= 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        """The value for `key` (marking it most recent), or None, counting a hit or miss."""
        if key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]
        self.misses += 1
        return None

    def put(self, key: Hashable, value: Any) -> None:
        """Store `value`, evicting the least recently used entries beyond `maxsize`."""
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def keys(self) -> list[Hashable]:
        """Keys from least to most recently used."""
        return list(self._data)

    def clear(self) -> None:
        self._data.clear()

    def info(self) -> CacheInfo:
        return CacheInfo(self.hits, self.misses, len(self._data), self.maxsize)


class TorchUnavailable(ImportError):
    """The torch runtime was needed but torch/transformers are not installed (a viewer-only install)."""

    def __init__(self, model_dir: Path, note: str, missing: str):
        why = f" ({note})" if note else ""
        super().__init__(
            f"{model_dir} cannot run on ONNX Runtime{why}, and the torch runtime needs {missing}, "
            f"which this install lacks.\nEither install the training extras ({TRAIN_EXTRA_HINT}), or "
            f"write the ONNX exports where they are installed: cxrclip export-onnx {model_dir}",
            name=missing)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' → CUDA when available, else CPU; anything else is passed to torch.device."""
    import torch

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


_DTYPE_NAMES = ("bfloat16", "float16", "float32")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """'float32' | 'bfloat16' | 'float16' (or the torch dtype) → torch dtype."""
    import torch

    dtypes = {name: getattr(torch, name) for name in _DTYPE_NAMES}
    if isinstance(dtype, torch.dtype) and dtype in dtypes.values():
        return dtype
    if isinstance(dtype, str) and dtype in dtypes:
        return dtypes[dtype]
    raise ValueError(f"dtype must be one of {list(_DTYPE_NAMES)}, got {dtype!r}")


def _check_map_kind(kind: str) -> None:
    from cxrclip.heatmaps import MAP_KINDS

    if kind not in MAP_KINDS:
        raise ValueError(f"kind must be one of {', '.join(MAP_KINDS)}, got {kind!r}")


def _suggestion(prompt: str, unknown: Sequence[str]) -> str | None:
    """The prompt with its unknown abbreviations spelled out ("PTX" -> "pneumothorax"), or None."""
    if not unknown:
        return None
    from cxrclip.prompts import spelled_out

    spelled = spelled_out(prompt, only=set(unknown))
    return spelled if spelled != prompt else None


class Engine:
    """CXR-CLIP inference with embedding caches; see the module docstring."""

    env_runtime = staticmethod(runtime_from_env)  # the runtime ``$CXRCLIP_RUNTIME`` asks for

    def __init__(self, model: torch.nn.Module, tokenizer: Any, model_id: str,
                 device: str | torch.device = "cpu", image_cache_size: int = 256,
                 text_cache_size: int = 4096, batch_size: int = 16, dtype: str | torch.dtype = "float32"):
        """Wrap a loaded `CXRClip` (moved to `device` and cast in place, eval mode): the torch runtime.

        `dtype="bfloat16"` (or "float16" on CUDA) casts the weights once: about
        2x faster on CPUs with AVX512-BF16/AMX, half the memory, cosine within
        ~1e-4 of float32. Embeddings are always returned as float32.
        """
        from cxrclip.towers import TorchTowers

        towers = TorchTowers(model, tokenizer, device, dtype)
        self._setup(towers, model.config, model_id, image_cache_size, text_cache_size, batch_size)

    @classmethod
    def from_towers(cls, towers: Towers, config: Any, model_id: str, image_cache_size: int = 256,
                    text_cache_size: int = 4096, batch_size: int = 16) -> Engine:
        """An engine over any `cxrclip.towers.Towers` (e.g. `cxrclip.runtime_onnx.OnnxTowers`)."""
        engine = cls.__new__(cls)
        engine._setup(towers, config, model_id, image_cache_size, text_cache_size, batch_size)
        return engine

    def _setup(self, towers: Towers, config: Any, model_id: str, image_cache_size: int,
               text_cache_size: int, batch_size: int) -> None:
        self.towers = towers
        self.runtime: str = towers.runtime
        self.runtime_note = ""  # why `load(runtime="auto")` chose this runtime, when not the first choice
        self.device = towers.device
        self.dtype = towers.dtype
        self.model = getattr(towers, "model", None)  # the torch CXRClip (None under ONNX Runtime)
        self.tokenizer = getattr(towers, "tokenizer", None)
        self._logit_scale = float(towers.logit_scale)
        self.model_id = str(model_id)
        self.config = config
        self.batch_size = int(batch_size)
        self._image_cache = LRUCache(image_cache_size)
        self._text_cache = LRUCache(text_cache_size)
        self._map_cache = LRUCache(32)  # normalised feature maps (D, h, w), ~100 kB each
        self._occlusion_cache = LRUCache(32)  # occluded embeddings per view (N, D), ~70 kB each
        self._cache_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self.calibration = None  # cxrclip.calibration.Calibration of the folder, if any
        self.ood_guard = None  # cxrclip.ood.OODGuard of the folder, if any
        self.heatmap_reference = None  # cxrclip.heatmap_reference.HeatmapReference of the folder, if any
        self.image_forward_seconds: float | None = None  # fastest one-view feature-map forward so far

    def attach_model_files(self, model_dir: str | Path) -> None:
        """Read the folder's ``calibration.json``, ``ood.json``/``ood.npz`` and
        ``heatmap_reference.json``/``.npz`` (each optional; ignored when written for another
        model id)."""
        from cxrclip.calibration import Calibration
        from cxrclip.heatmap_reference import HeatmapReference
        from cxrclip.ood import OODGuard

        self.calibration = Calibration.load(model_dir, self.model_id)
        self.ood_guard = OODGuard.load(model_dir, self.model_id)
        self.heatmap_reference = HeatmapReference.load(model_dir, self.model_id)

    @classmethod
    def load(cls, model_dir: str | Path, device: str | torch.device = "auto", num_threads: int | None = None,
             runtime: Runtime = "auto", **kwargs: Any) -> Engine:
        """Load a checkpoint directory written by `cxrclip.checkpoint.save_model`.

        A folder that is not a usable model raises `cxrclip.checkpoint.ModelFolderError`
        (unwrapped; its message names the file and the fix).

        `runtime`: "onnx" runs the folder's ONNX exports (``cxrclip export-onnx``) with
        ONNX Runtime, "torch" the torch model, "auto" ONNX Runtime when the exports and
        ``onnxruntime`` are present (and `dtype` is float32), else torch; `engine.runtime`
        says which, `engine.runtime_note` why auto fell back to torch.
        `num_threads` calls `torch.set_num_threads` (process-wide) only when given, or sets
        ONNX Runtime's intra-op threads. Other keyword arguments go to `Engine(...)`
        (cache sizes, batch size, dtype).
        """
        from cxrclip.checkpoint import missing_folder_error

        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise missing_folder_error(model_dir)
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        note = ""
        if runtime != "torch":
            from cxrclip import runtime_onnx

            note = runtime_onnx.unavailable_reason(model_dir, kwargs.get("dtype", "float32"))
            if not note:
                engine = runtime_onnx.load_engine(cls, model_dir, device, num_threads, **kwargs)
                engine.attach_model_files(model_dir)
                return engine
            if runtime == "onnx":
                raise runtime_onnx.OnnxUnavailable(note)
        engine = cls._load_torch(model_dir, device, num_threads, note, **kwargs)
        engine.runtime_note = note
        engine.attach_model_files(model_dir)
        return engine

    @classmethod
    def _load_torch(cls, model_dir: Path, device: str | torch.device, num_threads: int | None,
                    note: str = "", **kwargs: Any) -> Engine:
        try:
            import torch
            import transformers  # noqa: F401  (the torch runtime's text tower)
        except ImportError as exc:
            raise TorchUnavailable(model_dir, note, exc.name or "torch") from exc

        from cxrclip.checkpoint import load_model

        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        target = resolve_device(device)
        loaded = load_model(model_dir, target)
        return cls(loaded.model, loaded.tokenizer, loaded.model_id, target, **kwargs)

    def load_bank(self, bank_dir: str | Path, strict: bool = True):
        """Load a `SentenceBank`, checking it was built with this engine's model."""
        from cxrclip.sentence_bank import SentenceBank

        return SentenceBank.load(bank_dir, expected_model_id=self.model_id, strict=strict)

    @property
    def logit_scale(self) -> float:
        """The multiplier exp(logit_scale), clamped at 100 as in CLIP."""
        return self._logit_scale

    @property
    def embed_dim(self) -> int:
        return int(self.config.projection.dim)

    def cache_info(self) -> dict[str, CacheInfo]:
        """Hit/miss counters of the image and text caches."""
        with self._cache_lock:
            return {"image": self._image_cache.info(), "text": self._text_cache.info(),
                    "feature_map": self._map_cache.info(), "occlusion": self._occlusion_cache.info()}

    def clear_caches(self) -> None:
        with self._cache_lock:
            self._image_cache.clear()
            self._text_cache.clear()
            self._map_cache.clear()
            self._occlusion_cache.clear()

    # ----- images -----------------------------------------------------------------
    def _preprocess(self, pixels: np.ndarray) -> np.ndarray:
        from cxrclip.preprocess import preprocess_array

        array = np.asarray(pixels)
        if array.ndim not in (2, 3) or array.size == 0:
            raise ValueError(f"view pixels must be a non-empty H x W (or H x W x 3) array, got shape {array.shape}")
        return preprocess_array(array, self.config.preprocess)

    def _forward_images(self, batch: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        embeddings, mean_maps = [], []
        for start in range(0, len(batch), self.batch_size):
            pixels = np.stack([self._preprocess(p) for p in batch[start:start + self.batch_size]])
            with self._model_lock:
                embedding, mean_map = self.towers.encode_image_and_mean_map(pixels)
            embeddings.append(np.asarray(embedding, dtype=np.float32))
            mean_maps.append(np.asarray(mean_map, dtype=np.float32))
        return np.concatenate(embeddings), np.concatenate(mean_maps)

    def embed_images(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised image embeddings (N, D) without touching the cache (evaluation, calibration)."""
        return self.image_vectors(pixels)[0]

    def image_vectors(self, pixels: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(L2-normalised embeddings, spatial means of the projected feature maps), each (N, D),
        from one image-tower pass, without touching the cache; the mean map is what the
        out-of-distribution guard scores (`cxrclip.ood`)."""
        if not len(pixels):
            return np.zeros((0, self.embed_dim), np.float32), np.zeros((0, self.embed_dim), np.float32)
        return self._forward_images(list(pixels))

    def encode_views(self, views: Sequence[ViewInput]) -> np.ndarray:
        """L2-normalised image embeddings (N, D), cached by (model_id, view_id)."""
        return self.view_vectors(views)[0]

    def view_vectors(self, views: Sequence[ViewInput]) -> tuple[np.ndarray, np.ndarray]:
        """`image_vectors` of the views, cached together by (model_id, view_id)."""
        found: dict[str, np.ndarray] = {}  # view id -> (2, D): embedding, mean map
        with self._cache_lock:
            for view in views:
                if view.view_id not in found:
                    cached = self._image_cache.get((self.model_id, view.view_id))
                    if cached is not None:
                        found[view.view_id] = cached
        todo = list({v.view_id: v for v in views if v.view_id not in found}.values())
        if todo:
            embeddings, mean_maps = self._forward_images([v.pixels for v in todo])
            with self._cache_lock:
                for view, pair in zip(todo, np.stack([embeddings, mean_maps], axis=1)):
                    self._image_cache.put((self.model_id, view.view_id), pair)
                    found[view.view_id] = pair
        if not views:
            return np.zeros((0, self.embed_dim), np.float32), np.zeros((0, self.embed_dim), np.float32)
        pairs = np.stack([found[v.view_id] for v in views])
        return pairs[:, 0], pairs[:, 1]

    # ----- text -------------------------------------------------------------------
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised text embeddings (N, D) without touching the cache (for bank building).

        Texts are batched in order of length, so each batch pads to similar
        lengths; rows come back in input order.
        """
        max_length = int(self.config.text.max_length)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.embed_dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            input_ids, attention_mask = self.towers.tokenize([texts[i] for i in index], max_length)
            with self._model_lock:
                out[index] = self.towers.encode_text(input_ids, attention_mask)
        return out

    def encode_text(self, prompts: Sequence[str] | str) -> np.ndarray:
        """L2-normalised text embeddings (N, D), LRU-cached per prompt string."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        for prompt in prompts:
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError(f"prompts must be non-empty strings, got {prompt!r}")
        found: dict[str, np.ndarray] = {}
        with self._cache_lock:
            for prompt in dict.fromkeys(prompts):
                cached = self._text_cache.get(prompt)
                if cached is not None:
                    found[prompt] = cached
        todo = [p for p in dict.fromkeys(prompts) if p not in found]
        if todo:
            embeddings = self.embed_texts(todo)
            with self._cache_lock:
                for prompt, emb in zip(todo, embeddings):
                    self._text_cache.put(prompt, emb)
                    found[prompt] = emb
        if not prompts:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.stack([found[p] for p in prompts])

    def encode_ensemble(self, prompts: Sequence[str]) -> np.ndarray:
        """Mean of the normalised embeddings of `prompts`, re-normalised (D,)."""
        if not prompts:
            raise ValueError("a prompt ensemble needs at least one prompt")
        return _unit(self.encode_text(prompts).mean(axis=0))

    # ----- scoring ----------------------------------------------------------------
    def _study_embedding(self, view_emb: np.ndarray) -> np.ndarray:
        return study_embedding(view_emb).astype(np.float32)

    def study_embedding(self, study: StudyInput) -> np.ndarray:
        """Re-normalised mean of the study's view embeddings (D,): the query for `SentenceBank.nearest`."""
        if not study.views:
            raise ValueError(f"study {study.study_id!r} has no views")
        return self._study_embedding(self.encode_views(study.views))

    def _score_vectors(self, study: StudyInput, view_emb: np.ndarray, pos: np.ndarray, neg: np.ndarray,
                       aggregate: Aggregate) -> tuple[float, float, list[ViewScore]]:
        """(study similarity, study probability, per-view scores) of one pos/neg text pair."""
        scale = self.logit_scale
        sims, neg_sims = view_emb @ pos, view_emb @ neg
        probs = binary_probability(sims, neg_sims, scale)
        views = [ViewScore(v.view_id, v.label, float(s), float(p), float(n))
                 for v, s, p, n in zip(study.views, sims, probs, neg_sims)]
        if aggregate == "max":
            return float(sims.max()), float(probs.max()), views
        study_emb = self._study_embedding(view_emb)
        sim, neg_sim = float(study_emb @ pos), float(study_emb @ neg)
        return sim, float(binary_probability(sim, neg_sim, scale)), views

    def _check_study(self, study: StudyInput, aggregate: str) -> None:
        if aggregate not in ("mean", "max"):
            raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
        if not study.views:
            raise ValueError(f"study {study.study_id!r} has no views to score")

    def score(self, study: StudyInput, prompts: Sequence[str] | str,
              negatives: Sequence[str] | str | None = None, aggregate: Aggregate = "mean") -> ScoreResult:
        """Score free-text prompts against every view and the whole study.

        `negatives` gives one negative per prompt (or one for all); by default
        the negative of "X" is `cxrclip.prompts.negative_prompt("X")`.
        Study level: "mean" scores the re-normalised mean view embedding; "max"
        takes the highest view similarity and the highest view probability.
        """
        self._check_study(study, aggregate)
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        negs = self._negatives_for(prompts, negatives)
        view_emb = self.encode_views(study.views)
        text_emb = self.encode_text(prompts + negs)  # one forward pass for both sides
        pos_emb, neg_emb = text_emb[:len(prompts)], text_emb[len(prompts):]
        results = []
        guard = self.ood_guard
        familiarity = guard.prompt_familiarity(pos_emb) if guard is not None else [None] * len(prompts)
        for prompt, neg, p_emb, n_emb, fam in zip(prompts, negs, pos_emb, neg_emb, familiarity):
            sim, prob, views = self._score_vectors(study, view_emb, p_emb, n_emb, aggregate)
            unknown = tuple(guard.unknown_words(prompt)) if guard is not None else ()
            unfamiliar = guard is not None and guard.prompt_is_unfamiliar(prompt, p_emb)
            fam = None if fam is None or np.isnan(fam) else round(float(fam), 4)
            results.append(PromptScore(prompt, neg, sim, prob, views, fam, unfamiliar, unknown,
                                       _suggestion(prompt, unknown)))
        return ScoreResult(study.study_id, aggregate, self.logit_scale, results)

    @staticmethod
    def _negatives_for(prompts: list[str], negatives: Sequence[str] | str | None) -> list[str]:
        if negatives is None:
            from cxrclip.prompts import negative_prompt

            return [negative_prompt(p) for p in prompts]
        if isinstance(negatives, str):
            return [negatives] * len(prompts)
        negatives = list(negatives)
        if len(negatives) != len(prompts):
            raise ValueError(f"got {len(negatives)} negatives for {len(prompts)} prompts; "
                             "give one negative per prompt, a single string, or None")
        return negatives

    def zero_shot(self, study: StudyInput, findings: Sequence[str] | None = None,
                  aggregate: Aggregate = "mean", max_prompts: int | None = None) -> list[FindingScore]:
        """Zero-shot probability of each finding (default: CheXpert-14), highest first.

        The recipe is `cxrclip.zero_shot.ZeroShotClassifier` (class-prompt ensembles
        against their negatives, No Finding as the complement of the other findings,
        the folder's calibration and operating points); each `FindingScore.ood` holds
        the views' out-of-distribution verdicts when the folder has OOD statistics.
        `max_prompts` limits each ensemble to a fixed subset (faster first call).
        """
        self._check_study(study, aggregate)
        classifier = self.zero_shot_classifier(findings, max_prompts)
        view_emb, mean_maps = self.view_vectors(study.views)
        ood = self._verdicts(study.views, view_emb, mean_maps)
        return classifier.score_study([v.view_id for v in study.views], [v.label for v in study.views],
                                      view_emb, aggregate, ood)

    def zero_shot_classifier(self, findings: Sequence[str] | None = None,
                             max_prompts: int | None = None) -> ZeroShotClassifier:
        """The zero-shot recipe with this engine's text tower, logit scale and calibration."""
        return ZeroShotClassifier.build(self.encode_text, self.logit_scale, findings, self.calibration,
                                        max_prompts=max_prompts)

    def out_of_distribution(self, views: Sequence[ViewInput]) -> list[ViewOOD]:
        """Each view's OOD verdict (empty when the model folder has no OOD statistics)."""
        return self._verdicts(views, *self.view_vectors(views))

    def _verdicts(self, views: Sequence[ViewInput], view_emb: np.ndarray, mean_maps: np.ndarray
                  ) -> list[ViewOOD]:
        if self.ood_guard is None or not views:
            return []
        return self.ood_guard.verdicts([v.view_id for v in views], self.ood_guard.pick(view_emb, mean_maps))

    # ----- maps -------------------------------------------------------------------
    def similarity_map(self, view: ViewInput, prompt: str, negative: str | None = None,
                       kind: MapKind = "similarity", max_side: int | None = None) -> np.ndarray:
        """Per-pixel map (H, W) float32 in the view's original geometry; NaN outside the crop.

        The kinds (`cxrclip.heatmaps`): "similarity", the cosine between each projected
        feature-map location and the prompt (`negative` unused); "probability", softmax of
        logit_scale * [cos(negative), cos(prompt)] per location; "contribution", each
        location's share of the view's logit for prompt vs negative (sums to the logit),
        minus the same share of a normal chest when the folder has a heatmap reference
        (`cxrclip.heatmap_reference`, written by ``cxrclip calibrate --ood-data``);
        "occlusion", the drop of that logit when a patch of the input is masked (7 x 7
        positions onto an 8 x 8 grid, one image forward each: about 0.15 s per view for the
        demo model on 2 CPU cores, once per view since the occluded embeddings are cached
        for every prompt); "agreement", the geometric mean of the positive parts of
        "contribution" and "occlusion" on the view's pixels (`cxrclip.heatmaps.agreement_map`).
        The negative defaults to "no X". On held-out phantoms "agreement" points at the
        finding best (`training.evaluation.pointing`, figures in docs/trust.md).
        The coarse map is upsampled bilinearly through the model's resize + centre crop
        back onto the original pixels. The feature map is cached per view id, so a new
        prompt costs only text encoding and resampling. `max_side` returns a
        proportionally smaller map (same aspect, for overlays stretched over the image).
        """
        _check_map_kind(kind)
        pos = self.encode_text([prompt])[0]
        neg = None
        if kind != "similarity":
            neg_text = negative if negative is not None else self._negatives_for([prompt], None)[0]
            neg = self.encode_text([neg_text])[0]
        return self._map_on_view(view, pos, neg, kind, max_side)

    def finding_map(self, view: ViewInput, finding: str, kind: MapKind = "contribution",
                    max_side: int | None = None) -> np.ndarray:
        """A finding's map (as `similarity_map`) drawn with the zero-shot recipe's own text pair:
        the unit means of the finding's class-prompt ensemble and of its negatives, the
        vectors `zero_shot` scores with. So a "contribution" map sums to the raw logit behind
        the probability shown for the finding (before the normal reference is subtracted)."""
        _check_map_kind(kind)
        classifier = self.zero_shot_classifier([finding])
        index = classifier.names.index(classifier.requested[0])
        pos = classifier.positive[index].astype(np.float32)
        neg = classifier.negative[index].astype(np.float32)
        return self._map_on_view(view, pos, neg, kind, max_side)

    def _map_on_view(self, view: ViewInput, pos: np.ndarray, neg: np.ndarray | None, kind: MapKind,
                     max_side: int | None) -> np.ndarray:
        """The map of ``kind`` on the view's pixels; "agreement" combines two maps there, since
        contribution and occlusion live on different grids."""
        if kind == "agreement":
            from cxrclip.heatmaps import agreement_map

            return agreement_map(self._map_on_view(view, pos, neg, "contribution", max_side),
                                 self._map_on_view(view, pos, neg, "occlusion", max_side))
        return self._on_view(self._coarse_map(view, pos, neg, kind), view, max_side)

    def _on_view(self, coarse: np.ndarray, view: ViewInput, max_side: int | None) -> np.ndarray:
        """A map on the model's grid resampled onto the view's pixels (or a proportionally
        smaller image of at most ``max_side`` pixels on the long side)."""
        from cxrclip.preprocess import map_to_image

        height, width = np.asarray(view.pixels).shape[:2]
        if max_side is not None:
            if max_side < 1:
                raise ValueError(f"max_side must be >= 1 or None, got {max_side}")
            scale = min(1.0, max_side / max(height, width))
            height, width = max(1, round(height * scale)), max(1, round(width * scale))
        return np.asarray(map_to_image(coarse, height, width, self.config.preprocess), dtype=np.float32)

    def prefetch_feature_map(self, view: ViewInput) -> None:
        """Compute and cache a view's feature map now, so its first heatmap needs no image forward
        (`occluded_embeddings` does the same for the occlusion kinds)."""
        self.feature_map(view)

    def feature_map(self, view: ViewInput) -> np.ndarray:
        """Per-location projected features (D, h, w), not normalised, cached by view id."""
        key = (self.model_id, view.view_id)
        with self._cache_lock:
            cached = self._map_cache.get(key)
        if cached is not None:
            return cached
        pixels = self._preprocess(view.pixels)[None]
        with self._model_lock:
            start = time.perf_counter()
            fmap = np.asarray(self.towers.image_feature_map(pixels)[0], dtype=np.float32)  # (D, h, w)
            took = time.perf_counter() - start
        self.image_forward_seconds = min(took, self.image_forward_seconds or took)
        with self._cache_lock:
            self._map_cache.put(key, fmap)
        return fmap

    def _coarse_map(self, view: ViewInput, pos: np.ndarray, neg: np.ndarray | None, kind: MapKind) -> np.ndarray:
        """The map of text vectors ``pos`` against ``neg`` (unused by "similarity") on the
        model's grid (feature grid; occlusion: its own patch grid)."""
        from cxrclip import heatmaps

        if kind == "similarity":
            return heatmaps.cosine_map(heatmaps.unit_channels(self.feature_map(view)), pos)
        if kind == "contribution":
            fmap = self.feature_map(view)
            reference = None if self.heatmap_reference is None else self.heatmap_reference.nearest(fmap)
            return heatmaps.contribution_map(fmap, pos, neg, self.logit_scale, reference)
        if kind == "occlusion":
            return heatmaps.occlusion_map_from(self.occluded_embeddings(view), pos, neg, self.logit_scale)
        unit = heatmaps.unit_channels(self.feature_map(view))
        sims = heatmaps.cosine_map(unit, pos), heatmaps.cosine_map(unit, neg)
        return binary_probability(sims[0], sims[1], self.logit_scale).astype(np.float32)

    def occlusion_forwards(self) -> int:
        """Image forwards of one view's occlusion pass: one per patch position, plus the view."""
        from cxrclip import heatmaps

        size = int(self.config.preprocess.image_size)
        return len(heatmaps.OcclusionGrid.for_input(size).starts(size)) ** 2 + 1

    def occluded_embeddings(self, view: ViewInput) -> OccludedEmbeddings:
        """The view's embeddings with each occlusion patch masked (`cxrclip.heatmaps.OccludedEmbeddings`),
        cached by view id: they do not depend on the prompt."""
        from cxrclip import heatmaps

        key = (self.model_id, view.view_id)
        with self._cache_lock:
            cached = self._occlusion_cache.get(key)
        if cached is not None:
            return cached
        pixels = self._preprocess(view.pixels)

        def encode(batch: np.ndarray) -> np.ndarray:
            with self._model_lock:
                return np.asarray(self.towers.encode_image(batch), dtype=np.float32)

        grid = heatmaps.OcclusionGrid.for_input(pixels.shape[-1])
        embeddings = heatmaps.occluded_embeddings(encode, pixels, grid, self.batch_size)
        with self._cache_lock:
            self._occlusion_cache.put(key, embeddings)
        return embeddings
