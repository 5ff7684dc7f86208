"""The prior study shown beside the open one ("Compare with prior"): its scores, kept apart.

`PriorComparison` belongs to the `FindingsController`. When the viewer shows a prior
(`prior_changed` hook), the prior's views are read and scored by the same engine worker,
and the results go into the prior study's own `StudyResults` (keyed by its
StudyInstanceUID in the controller's `ResultsStore`), never into the open study's. A
prior scored before (e.g. opened as a study earlier) with the same model is not scored
again. The engine caches image embeddings per view (SOP Instance UID), so switching
back and forth costs nothing.

Every prior job is tagged with the prior's generation; a result for a prior that is no
longer shown is dropped. `changes()` pairs the two studies' findings (prior_change.py).
"""
from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from plugins.cxrclip_findings.prior_change import FindingChange, compare_findings
from plugins.cxrclip_findings.requests import Job
from plugins.cxrclip_findings.study_state import StudyResults

log = logging.getLogger(__name__)


class PriorComparison(QObject):
    """See the module docstring; ``controller`` is the plugin's `FindingsController`."""

    changed = Signal(object)         # the prior's StudyHandle, or None (comparison ended)
    findings_ready = Signal(object)  # the prior's findings (list of FindingScore)
    prompt_ready = Signal(object)    # the prior's PromptScore (or None: no readable view)
    failed = Signal(str)

    def __init__(self, controller: Any) -> None:
        super().__init__(controller)
        self.c = controller
        self.state: Any = None  # a controller StudyState for the prior, or None
        controller.model_ready.connect(lambda _summary: self._rescore())

    # ----- state ----------------------------------------------------------------------
    @property
    def handle(self) -> Any:
        """The prior's StudyHandle, or None."""
        return self.state.handle if self.state is not None else None

    @property
    def results(self) -> StudyResults | None:
        """The prior study's results (its own entry in the ResultsStore), or None."""
        return self.c.results.get(self.state.uid) if self.state is not None else None

    @property
    def findings(self) -> list[Any]:
        """The prior's zero-shot findings ([] until scored)."""
        return self.results.findings if self.results is not None else []

    def prompt_score(self, text: str) -> Any:
        """The prior's score of prompt ``text``, or None (not scored yet / no prior)."""
        return self.results.prompt_scores.get(text.strip()) if self.results is not None else None

    def changes(self) -> list[FindingChange]:
        """Per-finding change (current - prior); [] until both studies are scored."""
        if self.state is None or not self.c.findings or not self.findings:
            return []
        try:
            return compare_findings(self.c.findings, self.findings)
        except ValueError as exc:
            log.warning("findings not compared: %s", exc)
            return []

    # ----- hooks ------------------------------------------------------------------------
    def set_prior(self, handle: Any) -> None:
        """The viewer shows ``handle`` beside the open study (None: the comparison ended)."""
        from plugins.cxrclip_findings.controller import StudyState, study_uid_of

        gen = self.c.gens.bump("prior")
        usable = handle is not None and (self.c.study is None
                                         or study_uid_of(handle) != self.c.study.uid)
        if usable:
            views = [v for v in handle.views
                     if self.c.manifest is None or self.c.manifest.applies_to_view(v.meta)]
            self.state = StudyState(handle, views, gen)
        else:
            self.state = None
        self.c.worker.queue.discard(lambda j: "prior_gen" in j.meta)
        self.changed.emit(self.handle)
        self._start()

    def request_prompt(self, text: str, negative: str | None) -> None:
        """Score the open study's prompt on the prior too (the controller calls this)."""
        if self.state is None or self.c.service is None or not text:
            return
        self._submit("prior:prompt", lambda s, p: s.score(p, text, negative),
                     lambda score: self._prompt_done(text, score))

    # ----- jobs -------------------------------------------------------------------------
    def _rescore(self) -> None:
        """Another model: the prior's old scores mean nothing now."""
        if self.state is not None:
            self.state.prepared = None
            self._start()

    def _start(self) -> None:
        if self.state is None or self.c.service is None:
            return
        results, model_id = self.results, self.c._model_id()
        if results.model_id != model_id:
            results.reset_scores(model_id)
        if results.findings:
            self.findings_ready.emit(results.findings)
        else:
            self._submit("prior:findings", lambda s, p: s.zero_shot(p), self._findings_done)
        if self.c.last_prompt:
            self.request_prompt(*self.c.last_prompt)

    def _submit(self, key: str, fn: Any, done: Any) -> None:
        state, service = self.state, self.c.service
        gen = self.c.gens.bump(key)

        def run() -> tuple[str, Any]:
            prepared = state.ensure_prepared(service)
            return prepared.study_id, fn(service, prepared)

        def finish(result: tuple[str, Any]) -> None:
            if self.state is not state:  # the comparison ended or moved on meanwhile
                self.c.dropped += 1
                return
            done(result)

        job = Job(key, run, key, gen, {"prior_gen": state.generation})
        self.c._submit(job, finish, lambda exc: self.failed.emit(f"{type(exc).__name__}: {exc}"))

    def _findings_done(self, result: tuple[str, list[Any]]) -> None:
        study_uid, findings = result
        self.c.results.get(study_uid).findings = list(findings)
        self.findings_ready.emit(findings)

    def _prompt_done(self, text: str, result: tuple[str, Any]) -> None:
        study_uid, score = result
        if score is not None:
            self.c.results.get(study_uid).prompt_scores[score.prompt] = score
        self.prompt_ready.emit(score)
