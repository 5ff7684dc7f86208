"""Archive search: index folders of chest X-ray studies, then find studies by text or by example.

Public API (used by the viewer's Search panel; docs/architecture.md, docs/archive_search.md)::

    report = build_index([Path("archive")], Path("INDEX"), engine, batch_size=32, workers=2,
                         progress=lambda done, total: ..., cancel=lambda: False)
    with open_index("INDEX") as index:
        index.check_model(engine)                       # IndexModelMismatch when built with another model
        hits = index.search_text(engine, "large right pneumothorax", k=20, where=["view=PA"])
        more = index.search_like(engine, hits[0].study_key, k=20)
        views = index.study_views(hits[0].study_key)    # source paths for thumbnails

Importing this package needs neither torch nor transformers (the engine may run on ONNX Runtime).
"""
from __future__ import annotations

from cxrclip.index.archive import ArchiveIndex, open_index
from cxrclip.index.build import BuildReport, IndexModelMismatch, build_index
from cxrclip.index.filters import Filter, FilterError, parse_where
from cxrclip.index.records import IndexInfo, StudyHit, ViewRecord
from cxrclip.index.search import export_csv
from cxrclip.index.store import IndexStoreError

__all__ = ["ArchiveIndex", "BuildReport", "Filter", "FilterError", "IndexInfo", "IndexModelMismatch",
           "IndexStoreError", "StudyHit", "ViewRecord", "build_index", "export_csv", "open_index",
           "parse_where"]
