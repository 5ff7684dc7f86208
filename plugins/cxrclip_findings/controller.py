"""The plugin's UI-thread brain: state, requests to the engine worker, results to the panels.

Panels call methods (`request_prompt`, `select_finding`, ...) and listen to
signals. Every request is a `Job` for the single `EngineWorker`, tagged with
the study generation and its own topic generation; results whose generation
is no longer current (the study was switched, the prompt changed) are dropped
and counted in ``dropped``. The model loads lazily in the worker at activation.

Results are not kept here but in a `ResultsStore` keyed by StudyInstanceUID
(see study_state.py): each job writes into the results of the study it was
submitted for, and the panels read the open study's results.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

from plugins.cxrclip_findings.overlays import LAYER_NAME, heatmap_layers, restyle
from plugins.cxrclip_findings.prior_compare import PriorComparison
from plugins.cxrclip_findings.requests import Generations, Job
from plugins.cxrclip_findings.study_state import DraftStore, ResultsStore, StudyResults
from plugins.cxrclip_findings.worker import EngineWorker, JobResult

log = logging.getLogger(__name__)
SELECTED_VIEW = "<selected view>"
DRAFT_SAVE_MS = 1000


@dataclass
class StudyState:
    """The open study: the viewer's handle, the views the model may read, prepared input."""

    handle: Any
    views: list[Any]
    generation: int
    prepared: Any = None

    @property
    def uid(self) -> str:
        """The StudyInstanceUID the study's results are kept under."""
        return study_uid_of(self.handle)

    def ensure_prepared(self, service: Any) -> Any:
        """Read the views once (on the worker thread) and keep the model input."""
        if self.prepared is None:
            self.prepared = service.prepare(self.uid, self.views)
        return self.prepared


@dataclass(frozen=True)
class HeatmapTarget:
    """What the heatmap shows: a finding (drawn with the recipe's ensemble pair) or a prompt."""

    kind: str  # "finding" | "prompt"
    label: str
    prompt: str  # a prompt's text; a finding's name
    negative: str | None = None  # a prompt's negative; None: the engine's "no X" default


class FindingsController(QObject):
    """See the module docstring. ``host`` is the viewer's `PluginHost` (or None in tests)."""

    model_loading = Signal(str)
    model_ready = Signal(object)
    model_failed = Signal(str)
    study_changed = Signal(object, str)  # handle or None, idle reason ("" when active)
    view_problems = Signal(object)
    findings_ready = Signal(object)
    findings_failed = Signal(str)
    prompt_ready = Signal(object)
    prompt_failed = Signal(str)
    sentences_ready = Signal(object)
    sentences_failed = Signal(str)
    heatmap_ready = Signal(object)  # HeatmapTarget
    heatmap_failed = Signal(str)
    heatmap_style = Signal(bool, float)
    busy_changed = Signal(bool)
    job_timing = Signal(str, float)
    draft_loaded = Signal(str)  # the open study's draft (on study switch)

    def __init__(self, host: Any = None, manifest: Any = None,
                 service_factory: Callable[[Path], Any] | None = None,
                 parent: QObject | None = None, drafts: DraftStore | None = None) -> None:
        super().__init__(parent)
        self.host, self.manifest = host, manifest
        self._service_factory = service_factory
        self.gens = Generations()
        self.worker = EngineWorker(self)
        self.worker.finished_job.connect(self._on_result)
        self.worker.busy.connect(self.busy_changed)
        app = QCoreApplication.instance()
        if app is not None:  # never leave the engine thread running or a draft unsaved at exit
            app.aboutToQuit.connect(self.shutdown)
        self.results = ResultsStore(drafts)
        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.setInterval(DRAFT_SAVE_MS)
        self._draft_timer.timeout.connect(self.results.flush)
        self.service: Any = None
        self.model_dir: Path | None = None
        self.loading_dir: Path | None = None  # the folder being loaded now (None when idle)
        self.model_error = ""
        self.study: StudyState | None = None
        self.selected_view_id: str | None = None
        self.last_prompt: tuple[str, str | None] | None = None
        self.heatmap_visible, self.opacity = True, 0.7
        self.layers: dict[str, Any] = {}
        self.sentence_scope_view: str | None = None
        self.sentence_k = 8
        self.dropped = 0
        self.prior = PriorComparison(self)  # the prior shown beside the study ("Compare with prior")
        self._held: list[JobResult] | None = None  # results kept while the panels are built

    # ----- the open study's results (read-only views of the ResultsStore) -------------
    @property
    def current(self) -> StudyResults | None:
        """The open study's results, or None without a study."""
        return self.results.get(self.study.uid) if self.study is not None else None

    @property
    def findings(self) -> list[Any]:
        """Zero-shot findings of the open study."""
        return self.current.findings if self.current is not None else []

    @property
    def prompt_scores(self) -> dict[str, Any]:
        """Prompt scores of the open study, by prompt text."""
        return self.current.prompt_scores if self.current is not None else {}

    @property
    def heatmap_target(self) -> HeatmapTarget | None:
        """What the open study's heatmap shows."""
        return self.current.heatmap_target if self.current is not None else None

    def set_draft(self, text: str) -> None:
        """The open study's draft changed (saved to disk a second later and on exit)."""
        if self.study is None:
            return
        self.results.set_draft(self.study.uid, text)
        self._draft_timer.start()

    def flush_drafts(self) -> None:
        """Write changed drafts now."""
        self._draft_timer.stop()
        self.results.flush()

    def _model_id(self) -> str:
        try:
            return str(self.service.summary().model_id) if self.service is not None else ""
        except Exception:  # a summary failure must not lose results; log and carry on
            log.warning("model summary failed", exc_info=True)
            return ""

    # ----- model ------------------------------------------------------------------
    def load_model(self, model_dir: str | Path) -> None:
        """Load a model directory in the worker; on success re-run the open study."""
        model_dir = Path(model_dir)
        gen = self.gens.bump("model")
        self.loading_dir = model_dir
        self.model_loading.emit(str(model_dir))
        factory = self._service_factory or _default_service_factory

        def run() -> Any:
            service = factory(model_dir)
            service.warm_up(stop=self.worker.stopping)
            return service

        self._submit(Job("model", run, "model", gen), self._model_done, self._model_failed)

    def _model_done(self, service: Any) -> None:
        self.service, self.model_error, self.loading_dir = service, "", None
        self.model_dir = Path(service.model_dir)
        self.model_ready.emit(service.summary())
        if self.study is not None:
            self.study.prepared = None
            self.current.reset_scores(self._model_id())
            self._start_study_jobs()

    def _model_failed(self, exc: BaseException) -> None:
        """Report the failure; a model that was already loaded stays in use (nothing lost)."""
        message, self.loading_dir = str(exc), None
        if self.service is not None:
            message += f" (still using {self.service.model_dir})"
        self.model_error = message
        self.model_failed.emit(message)
        if self.host is not None:
            self.host.report_problem("CXR-CLIP model", message)

    # ----- study lifecycle ----------------------------------------------------------
    def open_study(self, handle: Any) -> None:
        """A study opened: drop the old one's work and schedule findings and sentences."""
        self._clear_overlays()
        self.flush_drafts()
        gen = self.gens.bump("study")
        self.worker.queue.discard(lambda j: j.meta.get("study_gen", gen) != gen)
        views = [v for v in handle.views
                 if self.manifest is None or self.manifest.applies_to_view(v.meta)]
        self.study = StudyState(handle, views, gen)
        self.selected_view_id = None
        results = self.current
        if results.model_id != self._model_id():
            results.reset_scores(self._model_id())
        if self.sentence_scope_view != SELECTED_VIEW:
            self.sentence_scope_view = None  # a view id of the old study means nothing now
        self.study_changed.emit(handle, "")
        self.draft_loaded.emit(results.draft)
        if self.service is not None:
            self._start_study_jobs()

    def study_not_applicable(self, handle: Any, reason: str) -> None:
        """A study the plugin does not handle: stay idle and say why."""
        self.close_study()
        self.study_changed.emit(handle, reason)

    def close_study(self) -> None:
        """Forget the study; late results for it are dropped."""
        self._clear_overlays()
        self.flush_drafts()
        self.gens.bump("study")
        self.worker.queue.discard(lambda j: "study_gen" in j.meta)
        self.study = None
        self.study_changed.emit(None, "no study open")
        self.draft_loaded.emit("")

    def select_view(self, view_id: str) -> None:
        """Remember the selected view; sentences follow it when their scope is SELECTED_VIEW."""
        self.selected_view_id = view_id
        if self.sentence_scope_view == SELECTED_VIEW:
            self.request_sentences(SELECTED_VIEW, self.sentence_k)

    def _start_study_jobs(self) -> None:
        self._submit_study("findings", lambda s, p: s.zero_shot(p), self._findings_done,
                           self.findings_failed.emit)
        self.request_sentences(self.sentence_scope_view, self.sentence_k)
        if self.last_prompt:
            self.request_prompt(*self.last_prompt)
        for view in self.study.views:  # one job per view: a study switch waits for one at most
            self._submit_study(f"prefetch:{view.view_id}",
                               lambda s, p, v=view.view_id: s.prefetch_map(p, v), lambda _r: None,
                               lambda msg: log.info("feature map prefetch failed: %s", msg))

    def _findings_done(self, result: tuple[Any, list[Any]]) -> None:
        prepared, findings = result
        self.results.get(prepared.study_id).findings = list(findings)
        self.view_problems.emit(prepared.problems)
        self.findings_ready.emit(findings)

    # ----- prompts, sentences, heatmaps ----------------------------------------------
    def request_prompt(self, text: str, negative: str | None = None) -> None:
        """Score a free-text prompt on the open study (latest request wins)."""
        text = text.strip()
        negative = (negative or "").strip() or None
        self.last_prompt = (text, negative) if text else None
        if not text or self.study is None or self.service is None:
            self.gens.bump("prompt")
            return
        self._submit_study("prompt", lambda s, p: s.score(p, text, negative),
                           lambda r: self._prompt_done(r[0].study_id, r[1]), self.prompt_failed.emit)
        self.prior.request_prompt(text, negative)

    def _prompt_done(self, study_uid: str, score: Any) -> None:
        if score is not None:
            self.results.get(study_uid).prompt_scores[score.prompt] = score
        self.prompt_ready.emit(score)

    def request_sentences(self, view_id: str | None, k: int) -> None:
        """Nearest bank sentences to the study (None), one view, or the selected view
        (`SELECTED_VIEW`)."""
        self.sentence_scope_view, self.sentence_k = view_id, int(k)
        if self.study is None or self.service is None:
            return
        target = self.selected_view_id if view_id == SELECTED_VIEW else view_id
        prior = self.has_prior()
        self._submit_study("sentences", lambda s, p: s.nearest_sentences(p, target, int(k), prior),
                           lambda r: self.sentences_ready.emit(r[1]), self.sentences_failed.emit)

    def has_prior(self) -> bool:
        """True when the viewer shows a prior study next to this one (then report sentences
        that compare with a prior study are offered)."""
        return getattr(self.host, "prior_study", None) is not None

    def select_finding(self, finding: str) -> None:
        """Show the heatmap of a finding on each view (drawn with its class-prompt ensemble)."""
        self.show_heatmap(HeatmapTarget("finding", finding, finding))

    def show_heatmap(self, target: HeatmapTarget) -> None:
        """Compute and show the heatmap of ``target`` on every readable view."""
        if self.study is None or self.service is None:
            return
        self.current.heatmap_target = target
        opacity, visible = self.opacity, self.heatmap_visible

        def run(service: Any, prepared: Any) -> dict[str, Any]:
            kind = service.map_kind_for(prepared)
            if target.kind == "finding":  # the recipe's ensemble pair: the map explains the score shown
                maps = service.finding_heatmaps(prepared, target.label, kind=kind)
            else:
                maps = service.heatmaps(prepared, target.prompt, target.negative, kind=kind)
            return heatmap_layers(maps, target.label, opacity, visible, service.heatmap_caption(kind))

        self._submit_study("heatmap", run, lambda r: self._heatmap_done(target, r[1]),
                           self.heatmap_failed.emit)

    def _heatmap_done(self, target: HeatmapTarget, layers: dict[str, Any]) -> None:
        self._clear_overlays()
        self.layers = restyle(layers, self.opacity, self.heatmap_visible)
        self._apply_layers()
        self.heatmap_ready.emit(target)

    def set_heatmap_visible(self, visible: bool) -> None:
        """Show or hide the heatmap layers (no recomputation)."""
        self.heatmap_visible = bool(visible)
        self.layers = restyle(self.layers, visible=self.heatmap_visible)
        self._apply_layers()
        self.heatmap_style.emit(self.heatmap_visible, self.opacity)

    def toggle_heatmap(self) -> None:
        """Flip heatmap visibility (the H key)."""
        self.set_heatmap_visible(not self.heatmap_visible)

    def set_opacity(self, opacity: float) -> None:
        """Change the heatmap opacity (0..1)."""
        self.opacity = min(1.0, max(0.0, float(opacity)))
        self.layers = restyle(self.layers, opacity=self.opacity)
        self._apply_layers()
        self.heatmap_style.emit(self.heatmap_visible, self.opacity)

    def _apply_layers(self) -> None:
        if self.host is None:
            return
        for view_id, layer in self.layers.items():
            self.host.set_overlay(view_id, layer)

    def _clear_overlays(self) -> None:
        if self.host is not None:
            for view_id in self.layers:
                self.host.remove_overlay(view_id, LAYER_NAME)
        self.layers = {}

    # ----- job plumbing --------------------------------------------------------------
    def _submit_study(self, key: str, fn: Callable[[Any, Any], Any],
                      done: Callable[[Any], None], fail: Callable[[str], None]) -> None:
        state, service = self.study, self.service
        if state is None or service is None:
            return
        gen = self.gens.bump(key)

        def run() -> tuple[Any, Any]:
            prepared = state.ensure_prepared(service)
            return prepared, fn(service, prepared)

        job = Job(key, run, key, gen, {"study_gen": state.generation})
        self._submit(job, done, lambda exc: fail(f"{type(exc).__name__}: {exc}"))

    def _submit(self, job: Job, done: Callable[[Any], None],
                fail: Callable[[BaseException], None]) -> None:
        job.meta.update(done=done, fail=fail)
        if self.worker.stopping.is_set():
            log.debug("job %s not queued: the plugin has shut down", job.key)
            return
        self.worker.submit(job)

    def _is_current(self, job: Job) -> bool:
        if not self.gens.is_current(job.topic, job.generation):
            return False
        study_gen = job.meta.get("study_gen")
        return study_gen is None or self.gens.is_current("study", study_gen)

    def hold_results(self) -> None:
        """Keep engine results (in order) until `release_results`: the panels that show
        them are still being built. The engine goes on working meanwhile."""
        if self._held is None:
            self._held = []

    def release_results(self) -> None:
        """Deliver the results kept since `hold_results`, then deliver as they come."""
        held, self._held = self._held or [], None
        for result in held:
            self._on_result(result)

    def _on_result(self, result: JobResult) -> None:
        job = result.job
        if self.worker.stopping.is_set():  # a result queued before shutdown: nobody wants it
            return
        if self._held is not None:
            self._held.append(result)
            return
        if not self._is_current(job):
            self.dropped += 1
            log.debug("dropped stale %s result (generation %s)", job.key, job.generation)
            return
        self.job_timing.emit(job.key, result.seconds)
        if result.error is not None:
            job.meta["fail"](result.error)
        else:
            job.meta["done"](result.value)

    def shutdown(self) -> None:
        """Save drafts and stop the worker thread (deactivate, or the app quitting)."""
        self._clear_overlays()
        self.flush_drafts()
        self.worker.stop()


def study_uid_of(handle: Any) -> str:
    """The key a study's results are kept under: its StudyInstanceUID (folder name for
    PNG/JPEG studies), never empty."""
    return str(getattr(handle, "study_uid", "") or "") or f"unnamed-study-{id(handle)}"


def _default_service_factory(model_dir: Path) -> Any:
    from plugins.cxrclip_findings.service import FindingsService
    from plugins.cxrclip_findings.settings import resolve_bank_dir, resolve_threads

    return FindingsService.load(model_dir, bank_dir=resolve_bank_dir(),
                                num_threads=resolve_threads())
