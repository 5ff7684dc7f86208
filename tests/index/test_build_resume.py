"""Build, resume after an interruption, incremental add, failures, model mismatch."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cxrclip.engine import Engine
from cxrclip.index import IndexModelMismatch, build_index, open_index

VIEWS = 24  # 6 studies x 2 views, as DICOM and as MIMIC-style PNG


def table(index_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(index_dir / "index.sqlite") as conn:
        return conn.execute(sql).fetchall()


def test_build_indexes_every_view_once(archive, tmp_path, index_engine):
    report = build_index([archive], tmp_path / "ix", index_engine, batch_size=5)
    assert (report.added, report.skipped, report.failed, report.cancelled) == (VIEWS, 0, 0, False)
    assert index_engine.embedded == VIEWS
    info = open_index(tmp_path / "ix").info()
    assert (info.views, info.studies, info.failures) == (VIEWS, 12, 0)
    assert info.model_id == index_engine.model_id and info.embed_dim == 16
    assert info.last_build["finished"] and info.last_build["added"] == VIEWS
    rows = table(tmp_path / "ix", "SELECT study_key, patient_id, study_uid, view_position FROM views")
    mimic = [r for r in rows if r[1] and r[1].startswith("p1")]
    assert len(mimic) == 12 and all(r[2].startswith("s5") for r in mimic)  # sNNNN folder = study, pNNNN = patient
    assert {r[3] for r in rows} >= {"LL", "LATERAL"}
    per_study = table(tmp_path / "ix", "SELECT n_views, findings FROM studies")
    assert all(n == 2 and '"Pleural Effusion"' in f for n, f in per_study)


def test_rerun_after_cancel_finishes_without_duplicates_or_rework(archive, tmp_path, index_engine):
    batches = []
    first = build_index([archive], tmp_path / "ix", index_engine, batch_size=4,
                        progress=lambda done, total: batches.append(done), cancel=lambda: len(batches) > 1)
    assert first.cancelled and first.added == 4 and index_engine.embedded == 4
    index_engine.embedded = 0
    second = build_index([archive], tmp_path / "ix", index_engine, batch_size=4)
    assert (second.added, second.skipped, second.cancelled) == (VIEWS - 4, 4, False)
    assert index_engine.embedded == VIEWS - 4  # finished files were not embedded again
    assert table(tmp_path / "ix", "SELECT count(*), count(DISTINCT path), count(DISTINCT view_id) FROM views") == [
        (VIEWS, VIEWS, VIEWS)]


def test_incremental_add_embeds_only_the_new_study(archive, tmp_path, index_engine, phantom_dir):
    build_index([archive], tmp_path / "ix", index_engine, batch_size=8)
    index_engine.embedded = 0
    study = archive / "mimic" / "p19" / "p19000099" / "s59000099"
    study.mkdir(parents=True)
    for image in (phantom_dir / "png" / "phantom-7-000000").glob("*.png"):
        shutil.copy2(image, study / image.name)
    report = build_index([archive], tmp_path / "ix", index_engine, batch_size=8)
    assert (report.added, report.skipped) == (2, VIEWS)
    assert index_engine.embedded == 2
    assert open_index(tmp_path / "ix").info().studies == 13


def test_changed_file_is_embedded_again_in_place(archive, tmp_path, index_engine):
    build_index([archive], tmp_path / "ix", index_engine, batch_size=8)
    image = sorted((archive / "mimic").rglob("*.png"))[0]
    image.write_bytes(image.read_bytes())  # same content, new mtime
    index_engine.embedded = 0
    report = build_index([archive], tmp_path / "ix", index_engine, batch_size=8)
    assert report.added == 1 and index_engine.embedded == 1
    assert table(tmp_path / "ix", "SELECT count(*) FROM views") == [(VIEWS,)]


def test_deleted_files_leave_the_index_and_their_studies_are_recomputed(archive, tmp_path, index_engine):
    build_index([archive], tmp_path / "ix", index_engine, batch_size=8)
    studies = sorted(p for p in (archive / "mimic").rglob("s5*") if p.is_dir())
    gone_study, halved = studies[0], studies[1]
    shutil.rmtree(gone_study)  # a whole study deleted
    sorted(halved.glob("*.png"))[0].unlink()  # one view of another study deleted
    index_engine.embedded = 0
    other = build_index([archive / "dicom"], tmp_path / "ix", index_engine, batch_size=8)
    assert other.removed == 0  # a build of other sources forgets nothing under archive/mimic
    report = build_index([archive], tmp_path / "ix", index_engine, batch_size=8)
    assert (report.removed, report.added, index_engine.embedded) == (3, 0, 0)
    assert table(tmp_path / "ix", "SELECT count(*) FROM views") == [(VIEWS - 3,)]
    paths = {p for (p,) in table(tmp_path / "ix", "SELECT path FROM views")}
    assert not any(p.startswith(str(gone_study)) for p in paths)
    n_views = dict(table(tmp_path / "ix", "SELECT folder, n_views FROM studies"))
    assert str(gone_study) not in n_views and n_views[str(halved)] == 1
    with open_index(tmp_path / "ix") as index:
        assert index.info().studies == 11
        keys = {hit.study_key for hit in index.search_text(index_engine, "pleural effusion", k=20)}
    assert len(keys) == 11  # every study left, none of the deleted one


def test_unreadable_files_are_recorded_and_the_rest_indexed(archive, tmp_path, index_engine):
    whole = sorted((archive / "dicom").rglob("*.dcm"))[0].read_bytes()
    (archive / "broken.dcm").write_bytes(whole[:len(whole) // 2])  # truncated in the pixel data
    (archive / "mimic" / "p10" / "p10000000" / "s50000000" / "zz.png").write_bytes(b"not a png")
    (archive / "scan.bin").write_bytes(b"no known format")
    (archive / "notes.txt").write_text("report", encoding="utf-8")   # a companion document: left out
    report = build_index([archive], tmp_path / "ix", index_engine, batch_size=8)
    assert (report.added, report.failed) == (VIEWS, 3)
    reasons = dict(table(tmp_path / "ix", "SELECT path, reason FROM failures"))
    assert "broken.dcm" in reasons[str(archive / "broken.dcm")]
    assert "not a readable image" in reasons[str(archive / "mimic/p10/p10000000/s50000000/zz.png")]
    assert "not a DICOM, PNG or JPEG file" in reasons[str(archive / "scan.bin")]
    assert str(archive / "notes.txt") not in reasons
    again = build_index([archive], tmp_path / "ix", index_engine, batch_size=8)
    assert (again.added, again.skipped, again.failed) == (0, VIEWS + 3, 0)  # failures are not retried
    retried = build_index([archive], tmp_path / "ix", index_engine, batch_size=8, retry_failed=True)
    assert (retried.failed, retried.skipped) == (3, VIEWS)


def test_non_chest_dicom_is_a_failure(archive, tmp_path, index_engine):
    import pydicom

    path = sorted((archive / "dicom").rglob("*.dcm"))[0]
    ds = pydicom.dcmread(path)
    ds.Modality = "CT"
    ds.save_as(path)
    report = build_index([archive], tmp_path / "ix", index_engine, batch_size=8)
    assert report.failed == 1
    assert "not a radiograph (Modality CT)" in table(tmp_path / "ix", "SELECT reason FROM failures")[0][0]


def test_index_of_another_model_is_refused(archive, tmp_path, index_engine, index_loaded):
    build_index([archive / "mimic"], tmp_path / "ix", index_engine, batch_size=8)
    other = Engine(index_loaded.model, index_loaded.tokenizer, "other-model-0123", "cpu")
    with pytest.raises(IndexModelMismatch) as info:
        build_index([archive / "mimic"], tmp_path / "ix", other)
    message = str(info.value)
    assert index_engine.model_id in message and "other-model-0123" in message
    assert "--force-new" in message and "-o" in message
    with pytest.raises(IndexModelMismatch):
        open_index(tmp_path / "ix").search_text(other, "effusion")


def test_cli_force_new_and_info(archive, tmp_path, index_model_dir, capsys):
    from cxrclip.cli import main

    out = tmp_path / "ix"
    args = ["index", "build", str(archive / "mimic"), "-o", str(out), "--model", str(index_model_dir),
            "--workers", "0", "--batch-size", "8"]
    assert main(args) == 0
    assert "added 12 views" in capsys.readouterr().out
    assert main(args + ["--force-new"]) == 0
    assert "added 12 views" in capsys.readouterr().out
    assert main(["index", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "views: 12" in text and "studies: 6" in text


def test_cli_bfloat16_build_embeds_like_float32(archive, tmp_path, index_model_dir, capsys):
    """--dtype bfloat16 (what "auto" picks on CUDA) casts the torch weights once; the stored
    embeddings stay within bf16 rounding of the float32 build's."""
    from cxrclip.cli import main
    from cxrclip.index.cli import build_dtype

    assert build_dtype("auto", "cpu") == "float32" and build_dtype("bfloat16", "cpu") == "bfloat16"
    stored = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / dtype
        assert main(["index", "build", str(archive / "mimic"), "-o", str(out), "--model", str(index_model_dir),
                     "--workers", "0", "--batch-size", "8", "--runtime", "torch", "--dtype", dtype]) == 0
        assert f"runtime torch, torch.{dtype}" in capsys.readouterr().out
        with sqlite3.connect(out / "index.sqlite") as db:
            rows = db.execute("SELECT path, embedding FROM views ORDER BY path").fetchall()
        stored[dtype] = ([r[0] for r in rows],
                         np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]))
    assert stored["float32"][0] == stored["bfloat16"][0] and len(stored["float32"][0]) == 12
    cosines = np.sum(stored["float32"][1] * stored["bfloat16"][1], axis=1)
    assert cosines.min() > 0.98 and not np.array_equal(stored["float32"][1], stored["bfloat16"][1])


def test_bad_build_arguments_are_clear(tmp_path, index_engine):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_index([tmp_path / "nowhere"], tmp_path / "ix", index_engine)
    with pytest.raises(ValueError, match="--batch-size"):
        build_index([tmp_path], tmp_path / "ix", index_engine, batch_size=0)
