"""Findings change the image where they should (same anatomy seed with and without them)."""
from __future__ import annotations

import numpy as np
import pytest

from training.phantoms import frontal as fr
from training.phantoms.anatomy import adapt_anatomy, sample_anatomy
from training.phantoms.draw import grid
from training.phantoms.findings import PATHOLOGIES, Finding, make_finding
from training.phantoms.frontal import frontal_layers
from training.phantoms.lesions import PNEUMOTHORAX_GAP, collapsed_lung_sd, draw_pneumothorax
from training.phantoms.study import generate_study

SIZE = 160
SEED, INDEX = 21, 4


def _pair(findings: list[Finding]) -> tuple[dict, dict, object]:
    base = generate_study(SEED, INDEX, SIZE, findings=[])
    with_f = generate_study(SEED, INDEX, SIZE, findings=findings)
    return base.images, with_f.images, with_f.anatomy


def test_right_pneumothorax_removes_markings_and_darkens_the_apex_lateral_region() -> None:
    ptx = Finding("Pneumothorax", side="right", zone="upper", ap="anterior", severity="severe")
    base, with_ptx, anat = _pair([ptx])
    u, v = grid(SIZE)
    collapsed = collapsed_lung_sd(anat, "right", "frontal", u, v, PNEUMOTHORAX_GAP[2])
    # inside the pleural space, away from the chest wall and from the pleural line
    region = (fr.lung_sd(anat, "right", u, v) > 0.012) & (collapsed < -0.015)
    assert region.sum() > 50
    assert with_ptx["frontal"][region].mean() < base["frontal"][region].mean() - 0.02
    layers = frontal_layers(anat, SIZE)
    before = (layers.vessels["right"] * layers.markings_mask["right"])[region]
    draw_pneumothorax(layers, anat, ptx, "frontal", np.random.default_rng(0))
    after = (layers.vessels["right"] * layers.markings_mask["right"])[region]
    assert before.max() > 0.2 and after.max() < 0.02, "markings must stop at the pleural line"
    left = (fr.lung_sd(anat, "left", u, v) > 0.01)
    assert abs(with_ptx["frontal"][left].mean() - base["frontal"][left].mean()) < 0.01


def _heart_width(ctr_anat) -> float:
    u, v = grid(SIZE)
    mask = fr._heart(ctr_anat, u, v) > 0.5
    cols = np.where(mask.any(axis=0))[0]
    return (cols.max() - cols.min() + 1) / SIZE


@pytest.mark.parametrize("severity", ["mild", "moderate", "severe"])
def test_cardiomegaly_widens_the_heart_beyond_half_the_thorax(severity: str) -> None:
    anat = sample_anatomy(np.random.default_rng(1))
    big = adapt_anatomy(anat, [Finding("Cardiomegaly", severity=severity)])
    thorax = 2 * anat.half_width
    assert _heart_width(anat) / thorax < 0.5 < _heart_width(big) / thorax
    base, with_cm, _ = _pair([Finding("Cardiomegaly", severity=severity)])
    assert with_cm["frontal"].mean() > base["frontal"].mean()


def test_bilateral_effusion_whitens_both_bases() -> None:
    eff = Finding("Pleural Effusion", side="bilateral", zone="lower", severity="moderate")
    base, with_eff, anat = _pair([eff])
    u, v = grid(SIZE)
    for side in ("right", "left"):
        basal = (fr.lung_sd(anat, side, u, v) > 0.005) & (v > anat.dome(side) - 0.04)
        assert with_eff["frontal"][basal].mean() > base["frontal"][basal].mean() + 0.1
    lower = v > anat.v_dome
    assert with_eff["lateral"][lower].mean() > base["lateral"][lower].mean()


@pytest.mark.parametrize("name", [*PATHOLOGIES, "Support Devices"])
def test_every_finding_is_visible_in_the_frontal_view(name: str) -> None:
    rng = np.random.default_rng(8)
    if name == "Support Devices":
        f = Finding(name, kind="endotracheal tube,pacemaker")
    else:
        f = make_finding(rng, name)
        f.severity = "moderate"
    base, with_f, _ = _pair([f])
    changed = (np.abs(with_f["frontal"] - base["frontal"]) > 0.06).sum()
    assert changed >= 15, f"{name} barely changes the frontal view ({changed} pixels)"
    if name != "Fracture":
        changed = (np.abs(with_f["lateral"] - base["lateral"]) > 0.04).sum()
        assert changed >= 15, f"{name} barely changes the lateral view ({changed} pixels)"


def test_intact_twin_differs_from_its_study_only_at_the_broken_rib() -> None:
    from training.phantoms.study import TWIN_SUFFIX, intact_twin

    rng = np.random.default_rng(3)
    fracture = make_finding(rng, "Fracture")
    edema = make_finding(rng, "Edema")
    study = generate_study(SEED, INDEX, SIZE, findings=[fracture, edema])
    twin = intact_twin(study, SIZE)
    assert twin is not None and twin.study_id == study.study_id + TWIN_SUFFIX and twin.twin_of == study.study_id
    assert [f.name for f in twin.findings] == ["Edema"]
    assert twin.report.labels.get("Fracture") in (None, 0) and twin.report.labels["Edema"] == 1
    assert np.array_equal(twin.images["lateral"], study.images["lateral"])    # the fracture is frontal only
    changed = np.abs(twin.images["frontal"] - study.images["frontal"]) > 0.02
    assert changed.sum() >= 15                                                # the rib is whole again
    ys, xs = np.nonzero(changed)
    boxes = np.array(study.regions["Fracture"]["frontal"]) * SIZE           # the broken rib's pieces
    x0, y0 = boxes[:, :2].min(axis=0) - 2
    x1, y1 = boxes[:, 2:].max(axis=0) + 2
    assert ((xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)).all(), "the twin differs away from the rib"
    assert "Fracture" not in twin.regions and "Edema" in twin.regions
    assert intact_twin(generate_study(SEED, INDEX, SIZE, findings=[edema]), SIZE) is None
