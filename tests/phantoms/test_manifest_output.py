"""labels.csv, ground_truth.jsonl and the training manifest agree and point at real PNGs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2

from training.data.manifest import read_manifest
from training.phantoms.dataset import split_of
from training.phantoms.findings import chexpert_14


def test_manifest_points_at_existing_pngs(phantom_dir: Path) -> None:
    m = read_manifest(phantom_dir)
    assert m.header.dataset == "phantom" and m.header.image_size == 96
    assert m.header.num_studies == 12 and m.header.num_images == 24
    for r in m.records:
        assert r.view_positions[1] == "LATERAL" and r.view_positions[0] in ("PA", "AP")
        assert r.findings and r.impression and r.labels
        assert r.split == split_of(r.study_id)
        for rel in r.images:
            img = cv2.imread(str(m.image_path(rel)), cv2.IMREAD_UNCHANGED)
            assert img is not None and img.shape == (96, 96)


def test_labels_csv_matches_manifest(phantom_dir: Path) -> None:
    rows = list(csv.DictReader((phantom_dir / "labels.csv").open()))
    names = chexpert_14()
    assert list(rows[0]) == ["study_id", *names]
    m = {r.study_id: r for r in read_manifest(phantom_dir).records}
    for row in rows:
        labels = m[row["study_id"]].labels
        for n in names:
            assert row[n] == ("" if n not in labels else f"{labels[n]:.1f}")
    truth = [json.loads(line) for line in (phantom_dir / "ground_truth.jsonl").open()]
    assert [t["study_id"] for t in truth] == [r["study_id"] for r in rows]
    for t in truth:
        drawn = {f["name"] for f in t["findings"]}
        pos = {k for k, v in t["labels"].items() if v != 0 and k != "No Finding"}
        assert drawn <= pos | {"Lung Opacity"}


def test_split_modes() -> None:
    assert split_of("x", "test") == "test"
    counts = {s: 0 for s in ("train", "validate", "test")}
    for i in range(2000):
        counts[split_of(f"phantom-0-{i:06d}")] += 1
    assert 1700 < counts["train"] < 1900 and counts["validate"] > 50 and counts["test"] > 50


def test_fracture_twins_follow_their_studies_in_the_same_split(tmp_path: Path) -> None:
    import pytest

    from training.phantoms.dataset import GenerateOptions, generate_dataset
    from training.phantoms.findings import Finding
    from training.phantoms.study import TWIN_SUFFIX

    fracture = [Finding("Fracture", side="left", zone="mid", severity="moderate", kind="rib", params={"rib": 6})]
    opts = GenerateOptions(out=tmp_path, seed=5, size=64, dicom=False, fracture_twins=True)
    rows = generate_dataset(opts, studies=3, forced={0: [], 1: fracture, 2: []})
    ids = [r["record"]["study_id"] for r in rows]
    assert ids == ["phantom-5-000000", "phantom-5-000001", "phantom-5-000001" + TWIN_SUFFIX, "phantom-5-000002"]
    records = {r.study_id: r for r in read_manifest(tmp_path).records}
    study, twin = records["phantom-5-000001"], records["phantom-5-000001" + TWIN_SUFFIX]
    assert study.labels["Fracture"] == 1 and twin.labels.get("Fracture") in (None, 0)
    assert twin.split == study.split
    truth = {json.loads(line)["study_id"]: json.loads(line) for line in (tmp_path / "ground_truth.jsonl").open()}
    assert truth[twin.study_id]["twin_of"] == study.study_id and "twin_of" not in truth[study.study_id]
    with pytest.raises(ValueError, match="--no-dicom"):
        generate_dataset(GenerateOptions(out=tmp_path / "d", seed=5, size=64, fracture_twins=True), studies=1)
