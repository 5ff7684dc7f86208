"""Headless logic of the plugin: turns viewer studies into engine calls (no Qt).

`FindingsService` wraps a `cxrclip.Engine` with what the panels need: model
summary from the card, reading views into model input (per-view errors kept,
not raised), zero-shot findings, prompt scores, heatmaps for each view, and
the report sentences nearest to the study or a view (sentence bank loaded for
the model, or built in memory from ``sentences.txt``). Every method runs on
the plugin's worker thread; the engine serialises model calls itself.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrclip.engine import Engine, FindingScore, PromptScore, StudyInput, ViewInput
from cxrclip.manifest import use_digest_cache
from cxrclip.sentence_bank import Neighbour, SentenceBank, agreeing, zero_shot_mentions
from plugins.cxrclip_findings.text_cache import CachedTextEngine, PromptEmbeddingStore, cache_root

log = logging.getLogger(__name__)

SYNTHETIC_WORDS = ("synthetic", "phantom", "demo model")
HEATMAP_MAX_SIDE = 512
HEATMAP_KIND = "agreement"  # see Engine.similarity_map and docs/trust.md (pointing game)
FALLBACK_HEATMAP_KIND = "contribution"  # for a model whose occlusion pass would be too slow here
OCCLUSION_BUDGET_S = 2.0  # longest occlusion pass per view (estimated) for which maps use HEATMAP_KIND
SENTENCE_OVERFETCH = 8  # bank neighbours fetched per wanted sentence (contradictions, comparisons dropped)
WARM_UP_BATCH = 64  # prompts per text-tower call while the prompt cache is filled
DIGEST_CACHE_FILE = "verified_digests.json"  # under text_cache.cache_root(): model files already hashed
_TEXT_NAME_RE = re.compile(r"([A-Za-z0-9][\w.\-/]*[\w])\s+text\s+(?:tower|encoder)", re.I)


class ModelLoadError(RuntimeError):
    """The model directory could not be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class ModelSummary:
    """What the Model panel shows (from the config and the model card)."""

    name: str
    model_id: str
    backbone: str
    text_encoder: str
    image_size: int
    data: str
    intended_use: str
    description: str
    synthetic: bool
    device: str
    path: str
    operating_points: dict[str, float] = field(default_factory=dict)
    calibrated: bool = False  # the folder has a calibration.json for this model
    ood_guard: bool = False  # the folder has out-of-distribution statistics


@dataclass(frozen=True)
class ViewProblem:
    """A view the model could not read."""

    view_id: str
    label: str
    reason: str


@dataclass
class PreparedStudy:
    """Model input of one study: the readable views plus problems of the others."""

    study_id: str
    inputs: StudyInput
    problems: list[ViewProblem] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """True when at least one view can be scored."""
        return bool(self.inputs.views)


def _card_is_synthetic(card: Any) -> bool:
    extra = getattr(card, "extra", {}) or {}
    if isinstance(extra, dict) and "synthetic" in extra:
        return bool(extra["synthetic"])
    text = " ".join(str(getattr(card, f, "") or "") for f in ("title", "description", "data"))
    return any(word in text.lower() for word in SYNTHETIC_WORDS)


def _model_folder_errors() -> tuple[type[BaseException], ...]:
    """The checkpoint loader's "bad model folder" error, when this cxrclip has it."""
    try:
        from cxrclip.checkpoint import ModelFolderError
    except ImportError:
        return ()
    return (ModelFolderError,)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def text_encoder_name(model_dir: Path, card: Any = None) -> str:
    """What the text tower is, e.g. "all-MiniLM-L6-v2 (BertModel, 6 layers, 384-d)".

    The name comes from the card's ``extra.text_encoder``, the text config's
    ``_name_or_path``, the source folder the model was built from, or the card's
    training text ("... all-MiniLM-L6-v2 text tower ..."); the architecture from
    ``text_encoder/config.json``. Saved models call their tower folder
    "text_encoder", which says nothing, so that name is never shown alone.
    """
    cfg = _read_json(model_dir / "config.json")
    text_cfg = _read_json(model_dir / str((cfg.get("text_encoder") or {}).get("dir", "text_encoder"))
                          / "config.json")
    extra = getattr(card, "extra", {}) or {}
    candidates = [extra.get("text_encoder") if isinstance(extra, dict) else None,
                  text_cfg.get("_name_or_path"),
                  (cfg.get("text_encoder") or {}).get("source"),
                  ((cfg.get("model") or {}).get("text") or {}).get("path")]
    name = next((n for n in (_meaningful_name(c) for c in candidates) if n), "")
    if not name:
        found = _TEXT_NAME_RE.search(" ".join(str(getattr(card, f, "") or "")
                                              for f in ("training", "description")))
        name = found.group(1).rsplit("/", 1)[-1] if found else ""
    arch = _architecture(text_cfg)
    if name and arch:
        return f"{name} ({arch})"
    return name or arch or "unknown text encoder"


def _meaningful_name(value: Any) -> str:
    """The last path part of ``value`` that is not a generic folder name ("model",
    "text_encoder"), looking one level up at most; "" when both are generic."""
    if not value:
        return ""
    path = Path(str(value))
    for part in (path.name, path.parent.name):
        generic = part.lower() in {"text_encoder", "text", "model", "checkpoint", "checkpoints", ""}
        if not generic and not re.fullmatch(r"step_\d+|checkpoint-\d+", part):
            return part
    return ""


def _architecture(text_cfg: dict[str, Any]) -> str:
    arch = (text_cfg.get("architectures") or [text_cfg.get("model_type", "")])[0]
    details = [f"{text_cfg['num_hidden_layers']} layers"] if "num_hidden_layers" in text_cfg else []
    if "hidden_size" in text_cfg:
        details.append(f"{text_cfg['hidden_size']}-d")
    return ", ".join([str(arch)] + details) if arch else ""


def operating_points(model_dir: Path, card: Any = None, calibration: Any = None) -> dict[str, float]:
    """Calibrated per-finding thresholds: the engine's ``calibration.json`` when given, else
    ``config.json`` ("operating_points") or the card's ``extra.operating_points``; empty when
    the model is uncalibrated."""
    if calibration is not None:
        return dict(calibration.operating_points())
    extra = getattr(card, "extra", {}) or {}
    raw = _read_json(model_dir / "config.json").get("operating_points") or (
        extra.get("operating_points") if isinstance(extra, dict) else None) or {}
    points = {}
    for finding, value in dict(raw).items():
        try:
            threshold = float(value)
        except (TypeError, ValueError):
            log.warning("operating point %r of %s is not a number, ignored", value, finding)
            continue
        if 0.0 <= threshold <= 1.0:
            points[str(finding)] = threshold
    return points


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """A 2D array from a grey or RGB(A) image (the engine takes 2D pixels)."""
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return arr[..., :3].mean(axis=2).astype(arr.dtype, copy=False)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"cannot use an image of shape {arr.shape} as model input")
    return arr


def seed_from_model_folder(store: PromptEmbeddingStore, engine: Engine, model_dir: Path) -> int:
    """Fill ``store`` from the model folder's shipped prompt embeddings when the same text
    tower computed them (`cxrclip.prompt_cache`); returns how many prompts were added."""
    from cxrclip.prompt_cache import engine_fingerprint, read_prompt_embeddings

    try:
        shipped = read_prompt_embeddings(model_dir, engine_fingerprint(engine, model_dir))
    except OSError as exc:  # an unreadable folder file only costs the first launch's speed
        log.info("prompt embeddings of %s not read: %s", model_dir, exc)
        return 0
    added = store.seed(shipped)
    if added:
        log.info("prompt cache seeded with %d embeddings from %s", added, model_dir)
    return added


class FindingsService:
    """The plugin's model-facing logic; see the module docstring."""

    def __init__(self, engine: Engine, model_dir: Path, card: Any = None,
                 bank_dir: Path | None = None) -> None:
        self.engine = engine
        self.model_dir = Path(model_dir)
        self.card = card
        self.bank_dir = bank_dir
        self._bank: SentenceBank | None = None
        self._bank_lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: str | Path, device: str = "auto", bank_dir: Path | None = None,
             num_threads: int | None = None) -> FindingsService:
        """Load the engine and card; `ModelLoadError` with a readable reason on failure."""
        from cxrclip.checkpoint import read_card

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelLoadError(f"model directory {model_dir} does not exist; choose a folder "
                                 "made by `cxrclip train` or `cxrclip convert-official`, or set "
                                 "CXRCLIP_MODEL")
        # The folder's MANIFEST.sha256 check reads ~100 MB; files unchanged since the last
        # launch keep their verified digest in the cache folder (cxrclip.manifest.DigestCache).
        use_digest_cache(cache_root() / DIGEST_CACHE_FILE)
        try:
            engine = CachedTextEngine.load(model_dir, device=device, num_threads=num_threads, runtime=Engine.env_runtime())
            card = read_card(model_dir)
        except _model_folder_errors() as exc:  # the loader's message names the file and fix
            raise ModelLoadError(str(exc)) from exc
        except Exception as exc:  # anything else: say what failed, keep the traceback in the log
            log.warning("loading model %s failed", model_dir, exc_info=True)
            raise ModelLoadError(f"cannot load model {model_dir}: {type(exc).__name__}: {exc}"
                                 ) from exc
        # One store per model *and* runtime: torch and ONNX Runtime text embeddings differ by ~1e-6,
        # and the findings must equal `Engine.zero_shot`'s (and `cxrclip eval`'s) exactly.
        engine.store = PromptEmbeddingStore.for_model(f"{engine.model_id}-{engine.runtime}")
        seed_from_model_folder(engine.store, engine, model_dir)
        return cls(engine, model_dir, card, bank_dir)

    # ----- model info -------------------------------------------------------------
    def summary(self) -> ModelSummary:
        """Name, backbone, data, intended use, synthetic flag and device of the model."""
        cfg, card = self.engine.config, self.card
        return ModelSummary(
            name=str(getattr(card, "title", "") or cfg.name or self.model_dir.name),
            model_id=self.engine.model_id, backbone=cfg.image.name,
            text_encoder=text_encoder_name(self.model_dir, card),
            image_size=int(cfg.preprocess.image_size),
            data=str(getattr(card, "data", "") or "not stated"),
            intended_use=str(getattr(card, "intended_use", "") or "not stated"),
            description=str(getattr(card, "description", "") or ""),
            synthetic=_card_is_synthetic(card), device=str(self.engine.device),
            path=str(self.model_dir), operating_points=self.operating_points(),
            calibrated=getattr(self.engine, "calibration", None) is not None,
            ood_guard=getattr(self.engine, "ood_guard", None) is not None)

    def operating_points(self) -> dict[str, float]:
        """finding -> calibrated-probability threshold (empty: uncalibrated)."""
        return operating_points(self.model_dir, self.card, getattr(self.engine, "calibration", None))

    def warm_up(self, findings: Sequence[str] | None = None,
                stop: threading.Event | None = None) -> None:
        """Encode the zero-shot prompt ensembles once (then kept on disk per model id),
        so the first study opened gets its findings quickly. ``stop`` ends it early
        (the app is closing) after the batch in progress.

        All findings' prompts are encoded together in batches of similar length (less
        padding than one call per finding: about 10 % faster on the first launch)."""
        from cxrclip.prompt_cache import zero_shot_prompts

        prompts = zero_shot_prompts(findings)
        for start in range(0, len(prompts), WARM_UP_BATCH):
            if stop is not None and stop.is_set():
                break
            self.engine.encode_text(prompts[start:start + WARM_UP_BATCH])
        store = getattr(self.engine, "store", None)
        if store is not None:
            try:
                store.save()
            except OSError as exc:  # a read-only cache folder only costs speed next time
                log.info("prompt embedding cache not saved: %s", exc)

    # ----- studies ----------------------------------------------------------------
    def prepare(self, study_id: str, views: Sequence[Any]) -> PreparedStudy:
        """Read each view handle's display pixels; unreadable views become problems."""
        inputs, problems = [], []
        for handle in views:
            label = getattr(handle.meta, "display_label", "") or handle.view_id
            try:
                pixels = to_gray(handle.display_uint8())
            except Exception as exc:  # decoder errors of any kind: report per view, go on
                log.info("view %s unreadable for the model", handle.view_id, exc_info=True)
                problems.append(ViewProblem(handle.view_id, label, f"{type(exc).__name__}: {exc}"))
                continue
            inputs.append(ViewInput(handle.view_id, pixels, label))
        return PreparedStudy(study_id, StudyInput(study_id, inputs), problems)

    def zero_shot(self, prepared: PreparedStudy) -> list[FindingScore]:
        """CheXpert-14 findings sorted by study probability (empty without usable views):
        `Engine.zero_shot`, i.e. the one recipe of `cxrclip.zero_shot`, calibrated when the
        model folder has a calibration, each with its views' out-of-distribution verdicts."""
        return self.engine.zero_shot(prepared.inputs) if prepared.usable else []

    def score(self, prepared: PreparedStudy, prompt: str, negative: str | None = None
              ) -> PromptScore | None:
        """One prompt against each view and the study ("no X" negative by default)."""
        if not prepared.usable:
            return None
        return self.engine.score(prepared.inputs, [prompt], negatives=negative).prompts[0]

    def heatmap_kind(self) -> str:
        """The kind of map drawn (`cxrclip.heatmaps`): `HEATMAP_KIND`, the agreement of the
        contribution and occlusion maps, unless this model's occlusion pass (one image forward
        per patch, `Engine.occlusion_forwards`) would take over `OCCLUSION_BUDGET_S` per view on
        this machine, judged from its fastest one-view forward so far: then the contribution
        map alone (a published ResNet50 on 2 CPU cores: about 6 s per view)."""
        forward = self.engine.image_forward_seconds
        if forward is not None and forward * self.engine.occlusion_forwards() > OCCLUSION_BUDGET_S:
            return FALLBACK_HEATMAP_KIND
        return HEATMAP_KIND

    def map_kind_for(self, prepared: PreparedStudy) -> str:
        """`heatmap_kind` once the study's feature maps are computed (cached for the maps)."""
        for view in prepared.inputs.views:  # the maps need them anyway; their forward times the model
            self.engine.feature_map(view)
        return self.heatmap_kind()

    def heatmaps(self, prepared: PreparedStudy, prompt: str, negative: str | None = None,
                 max_side: int | None = HEATMAP_MAX_SIDE, kind: str | None = None) -> dict[str, np.ndarray]:
        """Map of where ``prompt``'s logit against ``negative`` ("no X" by default) comes from on
        every usable view (NaN outside the crop), at most ``max_side`` pixels on the long side,
        same aspect as the image, of ``kind`` (default: `heatmap_kind`). The agreement of each
        location's contribution (measured against a normal chest when the model folder has a
        heatmap reference) and of the drop when it is masked (`cxrclip.heatmaps`) peaks inside
        the finding's region more often than either alone, or the cosine (pointing game,
        docs/trust.md)."""
        kind = kind or self.map_kind_for(prepared)
        return {view.view_id: self.engine.similarity_map(view, prompt, negative, kind=kind, max_side=max_side)
                for view in prepared.inputs.views}

    def finding_heatmaps(self, prepared: PreparedStudy, finding: str,
                         max_side: int | None = HEATMAP_MAX_SIDE, kind: str | None = None) -> dict[str, np.ndarray]:
        """A finding's map on every usable view, as `heatmaps`, drawn with the recipe's own
        text pair (its class-prompt ensemble against its negatives, `Engine.finding_map`): where
        the logit behind the probability the panel shows comes from."""
        kind = kind or self.map_kind_for(prepared)
        return {view.view_id: self.engine.finding_map(view, finding, kind=kind, max_side=max_side)
                for view in prepared.inputs.views}

    def heatmap_caption(self, kind: str) -> str:
        """What maps of ``kind`` show, for the colour bar (against a normal chest when the model
        folder has a heatmap reference, which the contribution part subtracts)."""
        what = "evidence for the score" if kind == "agreement" else "contribution to the score"
        against_normal = kind in ("contribution", "agreement") and self.engine.heatmap_reference is not None
        return f"{what} vs a normal chest" if against_normal else what

    def prefetch_map(self, prepared: PreparedStudy, view_id: str) -> bool:
        """Compute one view's feature map (and, when the maps are agreement maps, its occluded
        embeddings) ahead of the first heatmap click."""
        for view in prepared.inputs.views:
            if view.view_id == view_id:
                self.engine.prefetch_feature_map(view)
                if self.heatmap_kind() in ("occlusion", "agreement"):
                    self.engine.occluded_embeddings(view)
                return True
        return False

    # ----- sentences --------------------------------------------------------------
    def nearest_sentences(self, prepared: PreparedStudy, view_id: str | None = None,
                          k: int = 8, has_prior: bool = False) -> list[Neighbour]:
        """Bank sentences nearest to the study embedding, or to one view's embedding, that do
        not contradict the study's calibrated zero-shot findings (`sentence_bank.agreeing`:
        findings at or above their operating point present, the others absent; an
        uncalibrated model filters nothing this way). Without a prior study, sentences
        comparing with one are left out."""
        if not prepared.usable:
            return []
        if view_id is not None and any(v.view_id == view_id for v in prepared.inputs.views):
            view = next(v for v in prepared.inputs.views if v.view_id == view_id)
            query = self.engine.encode_views([view])[0]
        else:
            query = self.engine.study_embedding(prepared.inputs)
        found = self.bank().nearest(query, k * SENTENCE_OVERFETCH)
        study = zero_shot_mentions(self.zero_shot(prepared))
        return agreeing(found, study, k, has_prior)

    def bank(self) -> SentenceBank:
        """The sentence bank for this model: a saved one with matching model id, else built."""
        with self._bank_lock:
            if self._bank is None:
                self._bank = self._find_bank() or self._build_bank()
            return self._bank

    def _bank_dirs(self) -> list[Path]:
        root = self.bank_dir
        if root is None or not root.is_dir():
            return []
        return [root] + sorted(p for p in root.iterdir() if p.is_dir())

    def _find_bank(self) -> SentenceBank | None:
        for directory in self._bank_dirs():
            if not (directory / "bank.json").is_file():
                continue
            try:
                return self.engine.load_bank(directory)
            except ValueError as exc:
                log.info("sentence bank %s skipped: %s", directory, exc)
        return None

    def _build_bank(self) -> SentenceBank:
        from cxrclip.sentences import collect_sentences, read_txt_reports

        source = (self.bank_dir or Path()) / "sentences.txt"
        if not source.is_file():
            raise FileNotFoundError(f"no sentence bank for model {self.engine.model_id} and no "
                                    f"{source} to build one from; build one with `cxrclip bank "
                                    "build SOURCE -o DIR --model MODEL_DIR`")
        sentences = collect_sentences(read_txt_reports(source))
        return SentenceBank.build(sentences, self.engine.embed_texts, self.engine.model_id,
                                  progress=False, source=str(source))
