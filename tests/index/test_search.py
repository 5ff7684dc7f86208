"""Searching: ranking contract, --like, filters, Hide-PHI, CSV export, readers during a build, ANN = exact."""
from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from cxrclip.index import FilterError, build_index, export_csv, open_index, parse_where
from cxrclip.index.ann import save_ann
from cxrclip.index.store import Store
from cxrclip.zero_shot import binary_probability


@pytest.fixture()
def built(archive, tmp_path, index_engine) -> Path:
    build_index([archive], tmp_path / "ix", index_engine, batch_size=8, model_dir=None)
    return tmp_path / "ix"


@pytest.mark.parametrize("rule", ["contrast", "cosine"])
def test_text_search_ranks_studies_by_their_best_view(built, index_engine, rule):
    query = "large right pleural effusion"
    with open_index(built) as index:
        hits = index.search_text(index_engine, query, k=5, rule=rule)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
        pos, neg = index_engine.encode_text([query, "no " + query])
        for hit in hits:
            paths = [v["path"] for v in index.store.study_view_rows(hit.study_key)]
            embeddings = index.store.study_embeddings(hit.study_key, 16)[1]
            if rule == "cosine":
                per_view = embeddings @ pos
            else:
                per_view = binary_probability(embeddings @ pos, embeddings @ neg, index_engine.logit_scale)
            assert len(paths) == len(hit.files) == 2
            assert hit.score == pytest.approx(float(per_view.max()), abs=1e-5)
            assert hit.matching_view.path == paths[int(np.argmax(per_view))]
            assert set(hit.findings) >= {"Pleural Effusion", "Pneumothorax", "No Finding"}
        exhaustive = index.search_text(index_engine, query, k=100, rule=rule)
        assert len(exhaustive) == 12 and [h.study_key for h in exhaustive[:5]] == [h.study_key for h in hits]


def test_search_like_finds_the_same_images_elsewhere_and_excludes_itself(built, index_engine, archive):
    with open_index(built) as index:
        key = index.search_text(index_engine, "cardiomegaly", k=1)[0].study_key
        for rule in ("max_pair", "mean"):
            hits = index.search_like(index_engine, key, k=3, rule=rule)
            assert key not in [h.study_key for h in hits]
            assert hits[0].score == pytest.approx(1.0, abs=1e-4)  # the DICOM/PNG twin of the same study
        folder = Path(index.study_views(key)[0].path).parent
        by_path = index.search_like(index_engine, folder, k=3)
        assert key not in [h.study_key for h in by_path] and by_path[0].score == pytest.approx(1.0, abs=1e-4)


def test_where_filters_restrict_studies_and_views(built, index_engine):
    with open_index(built) as index:
        pa = index.search_text(index_engine, "pneumothorax", k=12, where=["view=PA"])
        assert pa and all(h.matching_view.view_position == "PA" for h in pa)
        lateral = index.search_text(index_engine, "pneumothorax", k=12, where=["view!=PA", "view!=AP"])
        assert all(h.matching_view.view_position in ("LL", "LATERAL") for h in lateral)
        everything = index.search_text(index_engine, "pneumothorax", k=12)
        cut = sorted(h.findings["Pleural Effusion"] for h in everything)[6]
        high = index.search_text(index_engine, "pneumothorax", k=12, where=[f"effusion>={cut}"])
        assert high and all(h.findings["Pleural Effusion"] >= cut for h in high)
        assert len(high) < len(everything)
        dated = index.search_text(index_engine, "pneumothorax", k=12, where=["date>=2000-01-01"])
        assert dated and all(h.study_date for h in dated)  # PNG studies carry no date: filtered out
        assert index.search_text(index_engine, "pneumothorax", k=12, where=["date<19000101"]) == []


@pytest.mark.parametrize("expr, fragment", [
    ("effusion", "not of the form KEY OP VALUE"),
    ("Fluffiness>0.5", "'Fluffiness' is not 'view', 'date' or a finding"),
    ("Pleural Effusion>high", "'high' is not a number"),
    ("Edema>1.5", "outside 0..1"),
    ("view>PA", "'view' takes = or !="),
    ("date>=2020", "not YYYYMMDD"),
])
def test_bad_where_expressions_name_the_problem_and_the_rules(expr, fragment):
    with pytest.raises(FilterError) as info:
        parse_where(expr)
    assert fragment in str(info.value) and "KEY OP VALUE" in str(info.value)


def test_where_parses_aliases_and_operators():
    assert parse_where("Pleural_Effusion >= 0.8") == parse_where("effusion>=0.8")
    assert parse_where("view = lateral").value == "LATERAL"
    assert parse_where("date<2021-06-30").value == "20210630"


def test_hide_phi_removes_identifiers_and_paths(built, index_engine, archive):
    with open_index(built) as index:
        hits = index.search_text(index_engine, "edema", k=12)
    shown = [h.to_dict(hide_phi=False) for h in hits]
    assert any(d["patient_id"] for d in shown) and any(str(archive) in d["folder"] for d in shown)
    hidden = json.dumps([h.to_dict(hide_phi=True) for h in hits])
    for hit in hits:
        for value in (hit.patient_id, hit.patient_name, hit.study_uid, hit.study_date, hit.folder, *hit.files):
            if value:
                assert value not in hidden
    assert str(archive) not in hidden and "PHANTOM" not in hidden
    first = hits[0].to_dict(hide_phi=True)
    assert first["folder"] == hits[0].study_key and first["matching_view"]["path"].startswith(hits[0].study_key)
    assert "patient_id" not in first and "accession" not in first


def test_cli_json_contract_and_csv_export(built, index_engine, index_model_dir, tmp_path, capsys):
    from cxrclip.cli import main

    cohort = tmp_path / "cohort.csv"
    code = main(["index", "search", str(built), "pleural effusion", "--k", "4", "--json", "--hide-phi",
                 "--model", str(index_model_dir), "--export", str(cohort), "--where", "view=PA"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"index", "query", "model", "results"} and data["model"] == index_engine.model_id
    assert len(data["results"]) == 4
    result = data["results"][0]
    assert set(result) == {"rank", "study_key", "folder", "files", "score", "matching_view", "findings"}
    assert set(result["matching_view"]) == {"path", "view_position", "score"}
    with cohort.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["study_key"] for r in rows] == [r["study_key"] for r in data["results"]]
    assert [float(r["score"]) for r in rows] == pytest.approx([r["score"] for r in data["results"]])
    assert "patient_id" not in rows[0] and float(rows[0]["Pleural Effusion"]) == pytest.approx(
        result["findings"]["Pleural Effusion"])


def test_csv_with_identifiers_round_trips(built, index_engine, tmp_path):
    with open_index(built) as index:
        hits = index.search_text(index_engine, "fracture", k=6)
    path = export_csv(hits, tmp_path / "out.csv", include_identifiers=True)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["folder"] for r in rows] == [h.folder for h in hits]
    assert [r["files"].split(";") for r in rows] == [h.files for h in hits]
    assert [r["patient_id"] for r in rows] == [h.patient_id or "" for h in hits]


def test_reader_opened_during_a_build_sees_new_rows(archive, tmp_path, index_engine):
    done = []
    build_index([archive], tmp_path / "ix", index_engine, batch_size=4,
                progress=lambda d, t: done.append(d), cancel=lambda: len(done) > 1)
    reader = open_index(tmp_path / "ix")
    early = reader.search_text(index_engine, "atelectasis", k=20)
    assert 1 <= len(early) <= 4
    build_index([archive], tmp_path / "ix", index_engine, batch_size=4)
    assert len(reader.search_text(index_engine, "atelectasis", k=20)) == 12  # the open reader refreshes
    reader.close()
    with open_index(tmp_path / "ix") as again:
        assert again.info().views == 24


def test_ann_file_gives_the_exact_results(built, index_engine):
    with Store(built / "index.sqlite", writable=True) as store:
        assert save_ann(store, built, 16) == 24
    for query in ("pneumothorax", "no acute cardiopulmonary process"):
        with open_index(built) as exact, open_index(built, exact_limit=1) as ann:
            want = exact.search_text(index_engine, query, k=6)
            got = ann.search_text(index_engine, query, k=6)
            assert ann.info().ann_vectors == 24 and exact.info().ann_vectors is None
        assert [h.study_key for h in got] == [h.study_key for h in want]
        assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)


def test_stale_ann_file_is_completed_from_sqlite(built, archive, index_engine, phantom_dir):
    with Store(built / "index.sqlite", writable=True) as store:
        save_ann(store, built, 16)
    extra = archive / "mimic" / "p19" / "p19000077" / "s59000077"
    extra.mkdir(parents=True)
    for image in (phantom_dir / "png" / "phantom-7-000003").glob("*.png"):
        shutil.copy2(image, extra / image.name)
    build_index([archive], built.parent / "ix", index_engine, batch_size=8, exact_limit=10**9)
    with open_index(built, exact_limit=1) as index:
        keys = [h.study_key for h in index.search_text(index_engine, "effusion", k=13)]
        assert len(keys) == 13 == len(set(keys))  # 12 from the ANN file + 1 newer, from SQLite


def test_without_usearch_large_indexes_are_searched_exactly_and_say_why(built, archive, index_engine, monkeypatch):
    """The viewer's install has no usearch ([archive] extra): no ANN file is written, an existing
    one is not read, results are the exact ones, and `info` names the extra."""
    with Store(built / "index.sqlite", writable=True) as store:
        save_ann(store, built, 16)  # written by an install that had the extra
    with open_index(built, exact_limit=1) as with_ann:
        want = [(h.study_key, h.score) for h in with_ann.search_text(index_engine, "pneumothorax", k=6)]
        assert with_ann.info().ann_vectors == 24 and with_ann.info().exact_only_reason is None
    monkeypatch.setitem(sys.modules, "usearch", None)  # importlib.util.find_spec -> None, import fails
    monkeypatch.setitem(sys.modules, "usearch.index", None)
    with open_index(built, exact_limit=1) as exact:
        info = exact.info()
        got = [(h.study_key, h.score) for h in exact.search_text(index_engine, "pneumothorax", k=6)]
    assert info.ann_vectors is None and "[archive]" in info.exact_only_reason and "24 views" in info.exact_only_reason
    assert [k for k, _ in got] == [k for k, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    rebuilt = built.parent / "ix-no-usearch"
    build_index([archive], rebuilt, index_engine, batch_size=8, exact_limit=1)
    assert not (rebuilt / "vectors.usearch").exists()
    with open_index(built) as small:  # below the exact limit nothing needs explaining
        assert small.info().exact_only_reason is None


def test_index_package_imports_without_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
            "import cxrclip.index, cxrclip.index.cli; print('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert run.returncode == 0, run.stderr
