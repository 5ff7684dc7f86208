"""Manifest format: round-trip, validation messages, split selection."""
from __future__ import annotations

import json

import pytest

from training.data.manifest import (ManifestError, ManifestHeader, StudyRecord, read_manifest,
                                    write_manifest)


def _record(sid: str, split: str = "train", **kw) -> StudyRecord:
    base = dict(study_id=sid, images=[f"{sid}/a.png", f"{sid}/b.png"],
                view_positions=["PA", "LATERAL"], findings="Clear lungs.",
                impression="No acute process.", labels=None, split=split, dataset="toy")
    base.update(kw)
    return StudyRecord(**base)


def test_round_trip(tmp_path):
    recs = [_record("s1"), _record("s2", split="test", findings=None, labels={"Edema": -1})]
    write_manifest(tmp_path, ManifestHeader(dataset="toy", image_size=256), recs)
    m = read_manifest(tmp_path / "manifest.json")
    assert m.records == recs
    assert m.header.num_studies == 2 and m.header.num_images == 4
    assert m.header.splits == {"train": 1, "test": 1}
    assert [r.study_id for r in m.split("test")] == ["s2"]
    assert m.image_path("s1/a.png") == tmp_path / "images" / "s1/a.png"
    assert recs[0].longest_section() == "No acute process."


def test_bad_records_are_named(tmp_path):
    with pytest.raises(ManifestError, match="split 'val'"):
        _record("s1", split="val")
    with pytest.raises(ManifestError, match="label values"):
        _record("s1", labels={"Edema": 2})
    with pytest.raises(ManifestError, match="view_positions"):
        _record("s1", view_positions=["PA"])
    with pytest.raises(ManifestError, match="relative"):
        _record("s1", images=["/abs/x.png"], view_positions=[None])
    write_manifest(tmp_path, ManifestHeader(dataset="toy", image_size=256), [_record("s1")])
    with (tmp_path / "studies.jsonl").open("a") as fh:
        fh.write(json.dumps({"study_id": "x", "images": ["x.png"], "split": "train",
                             "dataset": "toy", "colour": 1}) + "\n")
    with pytest.raises(ManifestError, match=r"studies.jsonl:2: unknown manifest keys \['colour'\]"):
        read_manifest(tmp_path)


def test_missing_files_named(tmp_path):
    with pytest.raises(ManifestError, match="manifest.json is missing"):
        read_manifest(tmp_path)
