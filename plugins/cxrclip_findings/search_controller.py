"""The Search panel's UI-thread brain: the open archive index, its build, and queries.

Nothing here waits: opening an index and every query run on a query thread
(an `EngineWorker`: one job at a time, a newer query replaces a queued one, and
a result whose generation is no longer current is dropped), and a build runs on
its own thread so queries (and the Findings panel) keep working while it runs.
The model is the one the plugin already loaded (``service_source()``, the
`FindingsService` with its ``engine`` and ``model_dir``); no second model is ever loaded. The index engine is `cxrclip.index` (docs/archive_search.md).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal

from plugins.cxrclip_findings.requests import Generations, Job
from plugins.cxrclip_findings.worker import EngineWorker, JobResult

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.2  # at most five progress signals a second reach the UI thread
BUILD_BATCH = 16
NO_MODEL = "The model is still loading; try again when the Model panel shows it."
FILTER_SEPARATOR = ";"


@dataclass(frozen=True)
class BuildProgress:
    """Where a running build stands: files done of total, and the rate since it started."""

    done: int
    total: int
    rate: float  # files per second in this run (resumed work not counted)

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate (None before the rate is known)."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None


@dataclass(frozen=True)
class SearchRequest:
    """What a query asks: free text or an example study, how many studies, which filters."""

    kind: str  # "text" | "like"
    query: str  # the text, or the example study's folder / index key
    k: int
    where: tuple[str, ...] = ()
    label: str = ""  # how the panel names the query (no identifiers)


def split_filters(text: str) -> tuple[str, ...]:
    """The filter field's conditions, separated by ``;`` (the CLI repeats ``--where``)."""
    return tuple(part.strip() for part in text.split(FILTER_SEPARATOR) if part.strip())


def check_filters(filters: Sequence[str]) -> str:
    """"" when every condition parses, else the parser's message (shown under the field)."""
    from cxrclip.index import parse_where

    for expr in filters:
        try:
            parse_where(expr)
        except ValueError as exc:
            return str(exc)
    return ""


class SearchController(QObject):
    """See the module docstring. ``service_source()`` returns the plugin's loaded
    `FindingsService` (``.engine``, ``.model_dir``) or None while no model is loaded."""

    index_opened = Signal(object, object)  # Path, IndexInfo
    index_failed = Signal(str)  # cannot open, or built with another model
    build_started = Signal(object)  # Path of the index being built
    build_progress = Signal(object)  # BuildProgress
    build_finished = Signal(object)  # BuildReport
    build_failed = Signal(str)
    results_ready = Signal(object, object)  # SearchRequest, list[StudyHit]
    search_failed = Signal(str)
    searching = Signal(bool)
    _progress_relay = Signal(int, int)  # emitted on the build thread, delivered on the UI thread

    def __init__(self, service_source: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.service_source = service_source
        self.gens = Generations()
        self.queries = EngineWorker(self)
        self.builder = EngineWorker(self)
        self.queries.finished_job.connect(self._on_result)
        self.builder.finished_job.connect(self._on_result)
        self._progress_relay.connect(self._on_progress)
        self.index: Any = None
        self.index_dir: Path | None = None
        self.index_error = ""
        self.building: Path | None = None
        self._cancel_build = threading.Event()
        self._build_start: tuple[float, int] | None = None
        self._latest_progress: tuple[int, int] | None = None
        self._last_progress = 0.0
        self.dropped = 0
        self.batch_size = BUILD_BATCH  # views embedded and committed together (Cancel waits for one)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._preloaded = False

    def preload(self) -> None:
        """Import the index package on the query thread (a third of a second on a busy CPU),
        so that checking the filter field on the UI thread finds it imported. Called when
        the Search panel is first shown, not at start-up, where the import would compete
        with the window and the model load for the CPU and the GIL."""
        if self._preloaded:
            return
        self._preloaded = True

        def run() -> None:
            import cxrclip.index  # noqa: F401

        job = Job("preload", run, "preload", self.gens.bump("preload"))
        self._submit(self.queries, job, lambda _none: None,
                     lambda exc: log.warning("cannot import cxrclip.index: %s", exc))

    def engine(self) -> Any:
        """The loaded model's Engine, or None."""
        service = self.service_source()
        return None if service is None else service.engine

    # ----- the index ------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True when an index is open and matches the loaded model."""
        return self.index is not None and not self.index_error

    def open_index(self, index_dir: str | Path) -> None:
        """Open ``index_dir`` on the query thread and check it against the loaded model."""
        index_dir = Path(index_dir).expanduser()
        engine, old = self.engine(), self.index
        self.index = None  # no query goes to the old index from now on

        def run() -> tuple[Any, Any]:
            from cxrclip.index import open_index

            if old is not None:
                old.close()  # SQLite connections belong to this (the query) thread
            index = open_index(index_dir)
            try:
                if engine is not None:
                    index.check_model(engine)
                return index, index.info()
            except BaseException:
                index.close()
                raise

        self.index_dir = index_dir
        gen = self.gens.bump("index")
        self.gens.bump("search")  # results of the old index mean nothing now
        job = Job(f"index:{gen}", run, "index", gen)  # never replaced: each closes its old index
        self._submit(self.queries, job, lambda r: self._index_done(index_dir, *r),
                     self._index_error)

    def _index_done(self, index_dir: Path, index: Any, info: Any) -> None:
        self.index, self.index_error = index, ""
        self.index_opened.emit(index_dir, info)

    def _index_error(self, exc: BaseException) -> None:
        """Unreadable, or built with another model (`IndexModelMismatch`): say why; the
        folder is kept so that loading the index's model checks it again."""
        self.index, self.index_error = None, str(exc) or type(exc).__name__
        self.index_failed.emit(self.index_error)

    def model_changed(self) -> None:
        """Another model loaded: check the open index against it again."""
        if self.index_dir is not None:
            self.open_index(self.index_dir)

    # ----- build ----------------------------------------------------------------------
    def start_build(self, sources: Sequence[str | Path], index_dir: str | Path) -> bool:
        """Build (or resume, or extend) ``index_dir`` from ``sources`` on the build thread.
        False (and ``build_failed``) when no model is loaded or a build is running."""
        service = self.service_source()
        if self.building is not None:
            self.build_failed.emit(f"A build into {self.building} is running; cancel it first.")
            return False
        if service is None:
            self.build_failed.emit(NO_MODEL)
            return False
        engine, model_dir = service.engine, Path(service.model_dir)
        sources = [Path(s).expanduser() for s in sources]
        index_dir = Path(index_dir).expanduser()
        self.building, self._build_start, self._last_progress = index_dir, None, 0.0
        self._latest_progress = None
        self._cancel_build.clear()
        cancel, batch_size = self._build_cancelled, self.batch_size

        def run() -> Any:
            from cxrclip.index import build_index

            return build_index(sources, index_dir, engine, batch_size=batch_size,
                               progress=self._report_progress, cancel=cancel, model_dir=model_dir)

        job = Job("build", run, "build", self.gens.bump("build"))
        self._submit(self.builder, job, lambda report: self._build_done(index_dir, report),
                     self._build_error)
        self.build_started.emit(index_dir)
        return True

    def cancel_build(self) -> None:
        """Ask the running build to stop after the batch in flight (it resumes next time)."""
        self._cancel_build.set()

    def _build_cancelled(self) -> bool:
        return self._cancel_build.is_set() or self.builder.stopping.is_set()

    def _report_progress(self, done: int, total: int) -> None:
        """Called on the build thread: forwarded at most every PROGRESS_INTERVAL_S."""
        now = time.monotonic()
        self._latest_progress = (int(done), int(total))  # the finish reports it, throttled or not
        if done < total and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        self._progress_relay.emit(int(done), int(total))

    def _on_progress(self, done: int, total: int) -> None:
        if self.building is None:
            return
        now = time.monotonic()
        if self._build_start is None:
            self._build_start = (now, done)
        start_time, start_done = self._build_start
        elapsed = now - start_time
        rate = (done - start_done) / elapsed if elapsed > 0 else 0.0
        self.build_progress.emit(BuildProgress(done, total, rate))

    def _build_done(self, index_dir: Path, report: Any) -> None:
        if self._latest_progress is not None:
            self._on_progress(*self._latest_progress)
        self.building = None
        self.build_finished.emit(report)
        self.open_index(index_dir)  # the new rows (and a cancelled build's rows) become searchable

    def _build_error(self, exc: BaseException) -> None:
        self.building = None
        self.build_failed.emit(str(exc) or type(exc).__name__)

    # ----- queries --------------------------------------------------------------------
    def search(self, request: SearchRequest) -> bool:
        """Run ``request`` on the query thread; a newer request drops this one's result.
        False (and ``search_failed``) when no usable index or model is there."""
        engine, index = self.engine(), self.index
        problem = self._search_problem(engine)
        if problem:
            self.search_failed.emit(problem)
            return False
        method = index.search_text if request.kind == "text" else index.search_like

        def run() -> list[Any]:
            return list(method(engine, request.query, k=request.k, where=request.where))

        job = Job("search", run, "search", self.gens.bump("search"))
        self._submit(self.queries, job, lambda hits: self._search_done(request, hits),
                     self._search_error)
        self.searching.emit(True)
        return True

    def _search_problem(self, engine: Any) -> str:
        if engine is None:
            return NO_MODEL
        if self.index_error:
            return self.index_error
        if self.index is None:
            return "Choose an index folder, or build one from your studies."
        return ""

    def cancel_search(self) -> None:
        """Forget the running query (its result is dropped when it arrives)."""
        self.gens.bump("search")
        self.queries.queue.discard(lambda j: j.key == "search")
        self.searching.emit(False)

    def _search_done(self, request: SearchRequest, hits: list[Any]) -> None:
        self.searching.emit(False)
        self.results_ready.emit(request, hits)

    def _search_error(self, exc: BaseException) -> None:
        self.searching.emit(False)
        self.search_failed.emit(str(exc) or type(exc).__name__)

    # ----- job plumbing -----------------------------------------------------------------
    def _submit(self, worker: EngineWorker, job: Job, done: Callable[[Any], None],
                fail: Callable[[BaseException], None]) -> None:
        job.meta.update(done=done, fail=fail)
        if worker.stopping.is_set():
            return
        worker.submit(job)

    def _on_result(self, result: JobResult) -> None:
        job = result.job
        if self.queries.stopping.is_set():
            return
        if not self.gens.is_current(job.topic, job.generation):
            self.dropped += 1
            log.debug("dropped stale %s result", job.key)
            return
        if result.error is not None:
            job.meta["fail"](result.error)
        else:
            job.meta["done"](result.value)

    def shutdown(self) -> None:
        """Stop a running build (it resumes next time) and the query thread."""
        self._cancel_build.set()
        self.builder.stop()
        self.queries.stop()

