"""Finding regions per view: recorded without changing a pixel, and where the finding is."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from training.phantoms.dataset import GenerateOptions, generate_dataset
from training.phantoms.dicom_io import to_stored
from training.phantoms.findings import Finding
from training.phantoms.regions import mask_boxes, pixel_boxes
from training.phantoms.samples import SAMPLES, _sample_tags
from training.phantoms.study import generate_study

REPO = Path(__file__).resolve().parents[2]
# The bundled sample studies were written before regions were recorded (commit 07c5352).
# Across machines float rounding may differ, so they are compared with the tolerance rule of
# test_sample_studies.py: 99.9th percentile of |difference| <= 0.5 % of the stored range,
# mean <= 0.05 %.
PIXEL_P999_TOL, PIXEL_MEAN_TOL = 0.005, 0.0005

EFFUSION_RIGHT = Finding("Pleural Effusion", side="right", zone="lower", ap="posterior",
                         location="base", severity="severe")


def _png_pixels(image: np.ndarray) -> np.ndarray:
    """A generated view as the dataset writes it to PNG (same size, 8 bits)."""
    return np.round(image * 255).astype(np.uint8)


def test_written_pngs_equal_the_views_drawn_without_recording(tmp_path: Path) -> None:
    from cxrclip.image_io import read_image

    generate_dataset(GenerateOptions(out=tmp_path, seed=7, size=96, dicom=False), studies=3)
    rows = [json.loads(line) for line in (tmp_path / "ground_truth.jsonl").read_text().splitlines()]
    assert any(f["regions"] for row in rows for f in row["findings"]), "seed 7 must have findings"
    for row in rows:
        bare = generate_study(7, row["index"], 96, record_regions=False)
        for view, name in (("frontal", bare.frontal_position), ("lateral", "LATERAL")):
            written = read_image(tmp_path / "png" / row["study_id"] / f"{name}.png").pixels
            assert np.array_equal(written, _png_pixels(bare.images[view])), f"{row['study_id']}/{name}"
    with_findings = [f for row in rows for f in row["findings"]]
    assert all(set(f["regions"]) <= {"PA", "AP", "LATERAL"} for f in with_findings)
    assert all(row["region_image_size"] == 96 for row in rows)


def test_sample_with_findings_matches_its_file_from_before_regions() -> None:
    name, seed, findings = SAMPLES[1]   # cardiomegaly + bilateral effusions: both regions drawn
    study = generate_study(seed, 0, 1024, findings=findings)
    assert set(study.regions) == {"Cardiomegaly", "Pleural Effusion"}
    tags = _sample_tags(seed, study)
    for view, file in (("frontal", f"1_{study.frontal_position}.dcm"), ("lateral", "2_LATERAL.dcm")):
        bundled = pydicom.dcmread(REPO / "assets" / "sample_studies" / name / file)
        stored, _, _ = to_stored(study.images[view], tags)
        diff = np.abs(stored.astype(np.float64) - bundled.pixel_array) / (2 ** int(bundled.BitsStored) - 1)
        assert np.percentile(diff, 99.9) <= PIXEL_P999_TOL and diff.mean() <= PIXEL_MEAN_TOL, file


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
