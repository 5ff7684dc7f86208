"""Which files of an archive folder the index looks at."""
from __future__ import annotations

from pathlib import Path

from cxrclip.index.walk import DOCUMENT_SUFFIXES, list_files


def test_walk_leaves_out_companion_documents_hidden_files_and_dicomdir(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    for name in ("1_PA.dcm", "2_LATERAL", "scan.png", "README.md", "labels.csv", "DICOMDIR", ".DS_Store",
                 "notes.TXT"):
        (study / name).write_bytes(b"x")
    names = sorted(Path(f.path).name for f in list_files([tmp_path]))
    assert names == ["1_PA.dcm", "2_LATERAL", "scan.png"]
    # a document named on its own is still taken (the user asked for it; the build says why it fails)
    assert [Path(f.path).name for f in list_files([study / "README.md"])] == ["README.md"]


def test_index_and_viewer_skip_the_same_documents() -> None:
    from viewer.io.scan import DOCUMENT_SUFFIXES as VIEWER_DOCUMENTS

    assert DOCUMENT_SUFFIXES == VIEWER_DOCUMENTS
