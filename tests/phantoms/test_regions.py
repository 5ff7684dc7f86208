"""Finding regions per view: recorded without changing a pixel, and where the finding is."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from training.phantoms.dataset import GenerateOptions, generate_dataset
from training.phantoms.findings import Finding
from training.phantoms.regions import mask_boxes, pixel_boxes
from training.phantoms.study import generate_study

# sha256 of PNGs written by the generator *before* regions were recorded (commit 1bc601e,
# seed 7, size 96): recording regions must leave every pixel as it was.
PNG_SHA256_BEFORE_REGIONS = {
    "phantom-7-000001/PA.png": "e416af71c0cda7919899e745f6716328abffecba1121039fcbb85b2d94905db0",
    "phantom-7-000001/LATERAL.png": "c1ce30c065591614a425f62c5f71755b6af0993a4dcfb9c18ca7e5e2b86e463d",
    "phantom-7-000002/PA.png": "b73573f2f17abc674aa39e117410ec7b948777eedbaf8c3174186f88c264e360",
    "phantom-7-000002/LATERAL.png": "af213268f666ff56c59c97b84a9b4b1a31a049698f728c0bfc124e39887ba2ea",
}

EFFUSION_RIGHT = Finding("Pleural Effusion", side="right", zone="lower", ap="posterior",
                         location="base", severity="severe")


def test_same_seed_same_pixels_as_before_regions(tmp_path: Path) -> None:
    generate_dataset(GenerateOptions(out=tmp_path, seed=7, size=96, dicom=False), studies=3)
    got = {rel: hashlib.sha256((tmp_path / "png" / rel).read_bytes()).hexdigest()
           for rel in PNG_SHA256_BEFORE_REGIONS}
    assert got == PNG_SHA256_BEFORE_REGIONS
    rows = [json.loads(line) for line in (tmp_path / "ground_truth.jsonl").read_text().splitlines()]
    with_findings = [f for row in rows for f in row["findings"]]
    assert with_findings and all(set(f["regions"]) <= {"PA", "AP", "LATERAL"} for f in with_findings)
    assert all(row["region_image_size"] == 96 for row in rows)


@pytest.mark.parametrize("index", [0, 3])
def test_recording_regions_changes_no_pixel(index: int) -> None:
    with_regions = generate_study(21, index, 96)
    without = generate_study(21, index, 96, record_regions=False)
    assert without.regions == {}
    for view in ("frontal", "lateral"):
        assert np.array_equal(with_regions.images[view], without.images[view])


def _inside(box: list[float], u: float, v: float) -> bool:
    return box[0] <= u <= box[2] and box[1] <= v <= box[3]


def test_effusion_region_is_the_right_base() -> None:
    study = generate_study(3, 0, 128, findings=[EFFUSION_RIGHT])
    (box,) = study.regions["Pleural Effusion"]["frontal"]
    assert box[3] > 0.6 and box[1] > 0.4, "an effusion sits at the base"
    assert box[2] < 0.55, "the patient's right is on the image's left"
    assert study.regions["Pleural Effusion"]["lateral"], "the lateral view shows it too"


def test_bilateral_and_anatomical_regions() -> None:
    both = Finding("Pleural Effusion", side="bilateral", zone="lower", ap="posterior",
                   location="base", severity="moderate")
    study = generate_study(4, 0, 128, findings=[Finding("Cardiomegaly", severity="severe"), both])
    assert len(study.regions["Pleural Effusion"]["frontal"]) == 2
    (heart,) = study.regions["Cardiomegaly"]["frontal"]
    assert _inside(heart, 0.5, 0.6), "the enlarged heart covers the lower mid chest"


def test_a_normal_study_has_no_regions() -> None:
    assert generate_study(8, 0, 96, findings=[]).regions == {}


def test_mask_boxes_and_pixel_boxes() -> None:
    mask = np.zeros((10, 20), bool)
    mask[2:4, 1:5] = True
    mask[6:9, 10:19] = True
    mask[0, 19] = True   # a speck under 5 % of the largest part is dropped
    boxes = mask_boxes(mask)
    assert boxes == [[0.05, 0.2, 0.25, 0.4], [0.5, 0.6, 0.95, 0.9]]
    assert pixel_boxes(boxes, 100) == [[5, 20, 25, 40], [50, 60, 95, 90]]
