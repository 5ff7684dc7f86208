"""`ArchiveIndex`: a read-only view of an index folder, safe to use while a build is writing it."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cxrclip.index.ann import EXACT_LIMIT, VectorSearch, exact_only_reason
from cxrclip.index.build import IndexModelMismatch
from cxrclip.index.filters import Filter, check_findings, parse_where
from cxrclip.index.records import IndexInfo, StudyHit, ViewRecord
from cxrclip.index.search import LikeRule, TextRule, like_query, rank, text_query
from cxrclip.index.store import SQLITE_FILE, IndexStoreError, Store

if TYPE_CHECKING:
    from cxrclip.engine import Engine

Where = Sequence[Filter | str]


class ArchiveIndex:
    """Searches one index folder (see docs/archive_search.md); open with `open_index`."""

    def __init__(self, index_dir: Path, exact_limit: int = EXACT_LIMIT):
        self.index_dir = Path(index_dir)
        self.store = Store(self.index_dir / SQLITE_FILE)
        meta = self.store.meta()
        if "model_id" not in meta:
            self.store.close()
            raise IndexStoreError(f"{self.index_dir / SQLITE_FILE} has no model recorded (a build that never "
                                  "started its first batch); run cxrclip index build again")
        self.model_id: str = meta["model_id"]
        self.model_dir: str | None = meta.get("model_dir")
        self.dim = int(meta["embed_dim"])
        self.findings: list[str] = list(meta.get("findings", []))
        self.vectors = VectorSearch(self.store, self.index_dir, self.dim, exact_limit)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ArchiveIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> IndexInfo:
        """Counts, the model, the last build."""
        meta, counts = self.store.meta(), self.store.counts()
        self.vectors.refresh()
        return IndexInfo(str(self.index_dir), self.model_id, self.model_dir, self.dim,
                         int(meta.get("format_version", 0)), meta.get("created"), self.findings, counts["views"],
                         counts["studies"], counts["failures"], self.vectors.ann_size, self.store.last_build(),
                         exact_only_reason(counts["views"], self.vectors.exact_limit))

    def check_model(self, engine: Engine) -> None:
        """Raise `IndexModelMismatch` unless ``engine`` runs the model this index was built with."""
        if engine.model_id != self.model_id:
            raise IndexModelMismatch(self.index_dir, self.model_id, engine.model_id)

    def _filters(self, where: Where) -> list[Filter]:
        filters = [w if isinstance(w, Filter) else parse_where(w) for w in where]
        check_findings(filters, self.findings)
        return filters

    def search_text(self, engine: Engine, query: str, k: int = 20, where: Where = (),
                    rule: TextRule = "contrast") -> list[StudyHit]:
        """Studies ranked by the max over their views of P(query rather than "no <query>")
        (``rule="contrast"``, as `Engine.score` for one view), or of cos(view, query) (``"cosine"``)."""
        from cxrclip.prompts import negative_prompt

        self.check_model(engine)
        filters = self._filters(where)
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"the text query must be a non-empty string, got {query!r}")
        positive, negative = engine.encode_text([query, negative_prompt(query)])
        return rank(self.vectors, self.store, text_query(positive, negative, engine.logit_scale, rule), k,
                    filters, set(), self.dim)

    def search_like(self, engine: Engine, study_path_or_key: str | Path, k: int = 20, where: Where = (),
                    rule: LikeRule = "max_pair") -> list[StudyHit]:
        """Studies most like a given one (a study key of this index, or a study folder/file), itself excluded.

        ``rule="max_pair"``: max over (query view, study view) cosines; ``"mean"``: cosine of the
        re-normalised mean embeddings.
        """
        self.check_model(engine)
        filters = self._filters(where)
        views, exclude = self._like_queries(engine, study_path_or_key)
        return rank(self.vectors, self.store, like_query(views, rule), k, filters, exclude, self.dim)

    def _like_queries(self, engine: Engine, target: str | Path) -> tuple[np.ndarray, set[str]]:
        """(query view embeddings, study keys to exclude) of a study key or a path."""
        key = str(target)
        if not Path(key).exists() and self.store.study_view_rows(key):
            return self.store.study_embeddings(key, self.dim)[1], {key}
        return embed_study_path(engine, Path(target), self.store)

    def study_views(self, study_key: str) -> list[ViewRecord]:
        """The study's indexed views (source paths for thumbnails), frontal views first."""
        rows = self.store.study_view_rows(study_key)
        lateral = ("LL", "RL", "LATERAL", "LAT")
        return [ViewRecord.from_row(r) for r in sorted(rows, key=lambda r: (r["view_position"] in lateral,
                                                                              r["path"]))]


def embed_study_path(engine: Engine, path: Path, store: Store) -> tuple[np.ndarray, set[str]]:
    """Embed a study folder or file given to ``--like``; excluded: its study keys and those of its
    views already in the index."""
    from cxrclip.index.decode import DecodedView, read_view
    from cxrclip.index.walk import list_files

    if not path.exists():
        raise FileNotFoundError(f"--like {path}: no such study folder or file, and not a study key of this index")
    decoded = [d for d in map(read_view, list_files([path])) if isinstance(d, DecodedView)]
    if not decoded:
        raise ValueError(f"--like {path}: no readable DICOM/PNG/JPEG chest views found")
    exclude = {d.meta.study_key for d in decoded}
    ids = [d.meta.view_id for d in decoded]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        exclude |= {r["study_key"] for r in store.view_rows_where(f"view_id IN ({', '.join('?' * len(chunk))})",
                                                                  chunk)}
    return engine.embed_images([d.pixels for d in decoded]), exclude


def open_index(index_dir: str | Path, exact_limit: int = EXACT_LIMIT) -> ArchiveIndex:
    """Open an index folder read-only (safe while a build runs). Raises `IndexStoreError` when it is not one."""
    return ArchiveIndex(Path(index_dir), exact_limit)
