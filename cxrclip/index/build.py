"""Resumable, incremental index builds: walk, decode in worker processes, embed in batches, commit.

Each batch (its views with embeddings and per-finding zero-shot probabilities,
its failures, and the re-aggregated studies it touched) is ONE SQLite
transaction, so a killed build loses at most the batch in flight; a rerun skips
every file already recorded with the same size and modification time (and, unless
``retry_failed``, every file that already failed). The ANN file is refreshed
every `ANN_EVERY_BATCHES` batches and at the end, once the index is large enough.
"""
from __future__ import annotations

import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrclip.index.ann import ANN_FILE, EXACT_LIMIT, save_ann, usearch_installed
from cxrclip.index.decode import DecodedView, FailedView, read_view
from cxrclip.index.store import FORMAT_VERSION, SQLITE_FILE, Failure, NewView, Store, StudyRow
from cxrclip.index.walk import SourceFile, files_to_do, list_files

if TYPE_CHECKING:
    from cxrclip.engine import Engine
    from cxrclip.zero_shot import ZeroShotClassifier

ANN_EVERY_BATCHES = 50
Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


class IndexModelMismatch(ValueError):
    """The index was built with another model than the one given."""

    def __init__(self, index_dir: Path, index_model: str, given_model: str):
        super().__init__(
            f"{index_dir} was built with model {index_model}, but the model given is {given_model}. "
            f"Use the same model (--model), start a new index there with --force-new, "
            f"or write to another folder with -o.")
        self.index_model, self.given_model = index_model, given_model


@dataclass(frozen=True)
class BuildReport:
    """What a build did: views added, files skipped as done, files failed, whether cancelled,
    seconds, and recorded files that are no longer there (removed from the index)."""

    added: int
    skipped: int
    failed: int
    cancelled: bool
    seconds: float
    removed: int = 0  # files recorded under the sources that are gone (deleted or moved): forgotten

    @property
    def views_per_second(self) -> float:
        return self.added / self.seconds if self.seconds > 0 else 0.0


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def remove_index(index_dir: Path) -> None:
    """Delete an index folder's files (``--force-new``); other files in the folder are kept."""
    for name in (SQLITE_FILE, SQLITE_FILE + "-wal", SQLITE_FILE + "-shm", ANN_FILE):
        (index_dir / name).unlink(missing_ok=True)
    shutil.rmtree(index_dir / "shards", ignore_errors=True)


def model_meta(engine: Engine, model_dir: Path | None) -> dict[str, Any]:
    """The ``index_meta`` entries that identify the model (its id carries a SHA-256 of its weights)
    and the findings scored per view (the zero-shot recipe's default: CheXpert-14)."""
    from cxrclip.prompts import CHEXPERT_14

    return {"format_version": FORMAT_VERSION, "model_id": engine.model_id, "embed_dim": engine.embed_dim,
            "model_dir": str(Path(model_dir).resolve()) if model_dir else None,
            "findings": list(CHEXPERT_14), "logit_scale": engine.logit_scale}


def open_for_build(db_path: Path, engine: Engine, model_dir: Path | None) -> Store:
    """The writable store at ``db_path``, created for this model or checked against it."""
    store = Store(db_path, writable=True)
    meta = store.meta()
    if meta and meta.get("model_id") != engine.model_id:
        store.close()
        raise IndexModelMismatch(db_path.parent, str(meta.get("model_id")), engine.model_id)
    if meta.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        store.close()
        raise ValueError(f"{db_path} has index format {meta['format_version']}, this version writes "
                         f"{FORMAT_VERSION}; rebuild it with --force-new")
    values = model_meta(engine, model_dir)
    if meta.get("model_dir") and not values["model_dir"]:
        values["model_dir"] = meta["model_dir"]
    store.set_meta({**values, "created": meta.get("created", utc_now())})
    return store


def decoded_stream(files: Sequence[SourceFile], workers: int) -> Iterator[DecodedView | FailedView]:
    """Files decoded in order: inline (``workers`` 0) or in worker processes, a bounded window ahead."""
    if workers <= 0:
        yield from map(read_view, files)
        return
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[Future] = deque()
        ahead = iter(files)
        try:
            for source in ahead:
                pending.append(pool.submit(read_view, source))
                if len(pending) >= 8 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _batches(stream: Iterator[DecodedView | FailedView], size: int) -> Iterator[list[DecodedView | FailedView]]:
    batch: list[DecodedView | FailedView] = []
    for item in stream:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _new_views(engine: Engine, classifier: ZeroShotClassifier, views: list[DecodedView]) -> list[NewView]:
    """Embed a batch and score each view with the zero-shot recipe and the OOD guard."""
    if not views:
        return []
    embeddings, mean_maps = engine.image_vectors([v.pixels for v in views])
    probs = classifier.probabilities(embeddings)
    columns = [classifier.names.index(n) for n in classifier.requested]
    guard = engine.ood_guard
    ood = None if guard is None else guard.verdicts([v.meta.view_id for v in views],
                                                    guard.pick(embeddings, mean_maps))
    out = []
    for i, view in enumerate(views):
        src = view.source
        findings = {classifier.names[j]: round(float(probs[i, j]), 5) for j in columns}
        out.append(NewView(src.path, src.size, src.mtime_ns, view.meta, embeddings[i], findings,
                           None if ood is None else float(ood[i].score),
                           None if ood is None else bool(ood[i].flag)))
    return out


def aggregate_study(store: Store, classifier: ZeroShotClassifier, key: str, dim: int) -> StudyRow | None:
    """The study's row from all its stored views: identifiers of the first view that has them,
    the common folder, and study findings by the zero-shot recipe (mean of the view embeddings)."""
    rows = store.study_view_rows(key)
    if not rows:
        return None
    _, embeddings = store.study_embeddings(key, dim)
    scores = classifier.score_study([r["view_id"] for r in rows], [r["view_position"] or "" for r in rows],
                                    embeddings, "mean")

    def first(column: str) -> Any:
        return next((r[column] for r in rows if r[column]), None)

    folder = os.path.commonpath([os.path.dirname(r["path"]) for r in rows])
    return StudyRow(key, first("study_uid"), first("study_date"), first("patient_id"), first("patient_name"),
                    first("accession"), folder, len(rows), {s.finding: round(s.probability, 5) for s in scores})


def commit_batch(store: Store, classifier: ZeroShotClassifier, views: list[NewView], failures: list[Failure],
                 dim: int) -> list[Failure]:
    """Write one batch in one transaction; returns every failure written (duplicates included)."""
    with store.transaction():
        failures = failures + store.add_views(views)
        store.add_failures(failures)
        for key in sorted({v.meta.study_key for v in views}):
            row = aggregate_study(store, classifier, key, dim)
            if row is not None:
                store.put_study(row)
    return failures


@dataclass
class _Counts:
    added: int = 0
    failed: int = 0
    batches: int = 0


def embed_files(store: Store, files: Sequence[SourceFile], engine: Engine, classifier: ZeroShotClassifier, *,
                batch_size: int, workers: int, progress: Progress | None, cancel: Cancel | None,
                on_batch: Callable[[int], None] | None = None) -> tuple[_Counts, bool]:
    """Decode, embed and commit ``files`` batch by batch; returns (counts, cancelled)."""
    counts, done, total = _Counts(), 0, len(files)
    if progress:
        progress(0, total)
    for batch in _batches(decoded_stream(files, workers), batch_size):
        if cancel is not None and cancel():
            return counts, True
        good = [b for b in batch if isinstance(b, DecodedView)]
        bad = [Failure(b.source.path, b.reason, b.source.size, b.source.mtime_ns)
               for b in batch if isinstance(b, FailedView)]
        written = commit_batch(store, classifier, _new_views(engine, classifier, good), bad, engine.embed_dim)
        counts.added += len(good) - (len(written) - len(bad))
        counts.failed += len(written)
        counts.batches += 1
        done += len(batch)
        if progress:
            progress(done, total)
        if on_batch:
            on_batch(counts.batches)
    return counts, False


def gone_files(sources: Sequence[Path], files: Sequence[SourceFile], recorded: Sequence[str]) -> list[str]:
    """Recorded paths inside ``sources`` that the walk no longer finds (deleted or moved
    files). Paths under folders that were not walked this time are kept."""
    roots = [str(Path(s).expanduser().resolve()) for s in sources]
    present = {f.path for f in files}
    return sorted(p for p in recorded if p not in present
                  and any(p == root or p.startswith(root.rstrip(os.sep) + os.sep) for root in roots))


def prune_gone(store: Store, classifier: ZeroShotClassifier | None, paths: list[str], dim: int) -> int:
    """Forget ``paths`` and recompute (or drop) the studies they belonged to, in one transaction."""
    if not paths:
        return 0
    with store.transaction():
        for key in sorted(store.remove_files(paths)):
            row = aggregate_study(store, classifier, key, dim) if classifier is not None else None
            if row is None and not store.study_view_rows(key):
                store.remove_study(key)
            elif row is not None:
                store.put_study(row)
    return len(paths)


def prune_missing(store: Store, sources: Sequence[Path], files: Sequence[SourceFile], engine: Engine,
                  recorded: dict[str, Any], failed: dict[str, Any],
                  classifier: ZeroShotClassifier | None = None) -> int:
    """Forget the recorded files under ``sources`` that the walk (``files``) no longer finds;
    returns how many. The zero-shot ensembles are encoded only when a study must be recomputed."""
    gone = gone_files(sources, files, [*recorded, *failed])
    if classifier is None and set(gone) & set(recorded):
        classifier = engine.zero_shot_classifier()
    return prune_gone(store, classifier, gone, engine.embed_dim)


def refresh_ann(store: Store, index_dir: Path, dim: int, exact_limit: int = EXACT_LIMIT) -> int | None:
    """Rewrite the ANN file when the index has at least ``exact_limit`` views and usearch is installed;
    returns its size or None."""
    if store.counts()["views"] < exact_limit or not usearch_installed():
        return None
    return save_ann(store, index_dir, dim)


def _check_build_args(batch_size: int, workers: int) -> None:
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")


def build_index(sources: list[Path], index_dir: Path, engine: Engine, *, batch_size: int = 32, workers: int = 0,
                progress: Progress | None = None, cancel: Cancel | None = None, retry_failed: bool = False,
                model_dir: Path | None = None, exact_limit: int = EXACT_LIMIT) -> BuildReport:
    """Index every DICOM/PNG/JPEG view under ``sources`` into ``index_dir`` (created when missing).

    Resumable and incremental: files already recorded (same path, size, mtime) are skipped,
    failed files too unless ``retry_failed``; recorded files under ``sources`` that are gone
    (deleted or moved) are removed, with their studies recomputed or dropped. ``progress(done, total)`` is called after each
    batch; ``cancel()`` is checked between batches (finished batches stay committed).
    ``model_dir`` is recorded so searches can find the model again.
    Raises `IndexModelMismatch` when the index holds another model's embeddings.
    """
    _check_build_args(batch_size, workers)
    started, index_dir = time.perf_counter(), Path(index_dir)
    store = open_for_build(index_dir / SQLITE_FILE, engine, model_dir)
    try:
        build_id = store.start_build(utc_now(), engine.runtime)
        files = list_files(sources)
        recorded, failed = store.recorded_files(), store.failed_files()
        todo = files_to_do(files, recorded, failed, retry_failed)

        def periodic_ann(batches: int) -> None:
            if batches % ANN_EVERY_BATCHES == 0:
                refresh_ann(store, index_dir, engine.embed_dim, exact_limit)

        classifier = engine.zero_shot_classifier() if todo else None  # encodes the ensembles: seconds
        removed = prune_missing(store, sources, files, engine, recorded, failed, classifier)
        counts, cancelled = embed_files(store, todo, engine, classifier, batch_size=batch_size, workers=workers,
                                        progress=progress, cancel=cancel, on_batch=periodic_ann)
        refresh_ann(store, index_dir, engine.embed_dim, exact_limit)
        seconds = time.perf_counter() - started
        report = BuildReport(counts.added, len(files) - len(todo), counts.failed, cancelled, seconds, removed)
        store.finish_build(build_id, utc_now(), report.added, report.skipped, report.failed, cancelled, seconds)
        return report
    finally:
        store.close()

