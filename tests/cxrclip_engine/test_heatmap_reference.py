"""The normal reference of contribution maps (`cxrclip.heatmap_reference`) and its use."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrclip.engine import Engine, ViewInput
from cxrclip.heatmap_reference import REFERENCE_ARRAYS, REFERENCE_JSON, HeatmapReference, HeatmapReferenceError
from cxrclip.heatmaps import contribution_map
from cxrclip.manifest import write_manifest

DEMO = Path(__file__).resolve().parents[2] / "assets" / "models" / "cxrclip-demo"


def _maps() -> list[tuple[str, np.ndarray]]:
    frontal = [np.full((2, 3, 3), v, np.float32) for v in (1.0, 3.0)]
    lateral = [np.full((2, 3, 3), -4.0, np.float32)]
    return [("frontal", m) for m in frontal] + [("lateral", m) for m in lateral]


def test_fit_takes_the_mean_per_view_kind_and_counts_the_views() -> None:
    ref = HeatmapReference.fit(_maps(), {"model_id": "m"})
    assert sorted(ref.maps) == ["frontal", "lateral"]
    assert np.all(ref.maps["frontal"] == 2.0) and np.all(ref.maps["lateral"] == -4.0)
    assert ref.meta == {"model_id": "m", "n_views": {"frontal": 2, "lateral": 1}}


def test_nearest_picks_the_closer_kind() -> None:
    ref = HeatmapReference.fit(_maps())
    assert np.all(ref.nearest(np.full((2, 3, 3), 1.5, np.float32)) == 2.0)
    assert np.all(ref.nearest(np.full((2, 3, 3), -3.0, np.float32)) == -4.0)
    with pytest.raises(HeatmapReferenceError, match="does not match"):
        ref.nearest(np.zeros((2, 4, 4), np.float32))


def test_fit_refuses_nothing_and_mixed_shapes() -> None:
    with pytest.raises(HeatmapReferenceError, match="no normal views"):
        HeatmapReference.fit([])
    with pytest.raises(HeatmapReferenceError, match="different shapes"):
        HeatmapReference.fit([("frontal", np.zeros((2, 3, 3))), ("frontal", np.zeros((2, 4, 4)))])


def test_save_load_round_trip_and_model_id(tmp_path: Path) -> None:
    ref = HeatmapReference.fit(_maps(), {"model_id": "model-a", "data": ["runs/x"]})
    written = ref.save(tmp_path)
    assert {p.name for p in written} == {REFERENCE_JSON, REFERENCE_ARRAYS}
    again = HeatmapReference.load(tmp_path, "model-a")
    assert again is not None and again.meta == ref.meta
    assert all(np.array_equal(again.maps[k], ref.maps[k]) for k in ref.maps)
    assert HeatmapReference.load(tmp_path, "model-b") is None   # written for another model
    assert HeatmapReference.load(tmp_path / "nowhere") is None


def test_a_damaged_file_names_the_fix(tmp_path: Path) -> None:
    HeatmapReference.fit(_maps()).save(tmp_path)
    (tmp_path / REFERENCE_ARRAYS).write_bytes(b"not a zip")
    with pytest.raises(HeatmapReferenceError, match="re-run `cxrclip calibrate`"):
        HeatmapReference.load(tmp_path)
    HeatmapReference.fit(_maps()).save(tmp_path)
    (tmp_path / REFERENCE_JSON).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(HeatmapReferenceError, match="not a cxrclip-heatmap-reference"):
        HeatmapReference.load(tmp_path)


def test_contribution_against_a_reference_is_the_share_of_the_difference() -> None:
    """Hand-made map: D=2, 1 x 2 grid, direction (1, 0), scale 10."""
    fmap = np.array([[[3.0, 1.0]], [[0.0, 4.0]]], np.float32)      # (2, 1, 2)
    reference = np.array([[[1.0, 1.0]], [[0.0, 0.0]]], np.float32)
    pos, neg = np.array([1.0, 0.0], np.float32), np.array([0.0, 0.0], np.float32)
    norm = np.linalg.norm(fmap.mean(axis=(1, 2)))                  # |(2, 2)| = 2.828
    raw = contribution_map(fmap, pos, neg, 10.0)
    relative = contribution_map(fmap, pos, neg, 10.0, reference)
    np.testing.assert_allclose(raw, [[10 * 3 / (2 * norm), 10 * 1 / (2 * norm)]], rtol=1e-6)
    np.testing.assert_allclose(relative, [[10 * 2 / (2 * norm), 0.0]], rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def demo() -> Engine:
    return Engine.load(DEMO)


def test_the_bundled_model_ships_a_reference_that_the_contribution_map_uses(demo: Engine) -> None:
    """The map is the reference-relative contribution; without the reference it is the raw one."""
    assert demo.heatmap_reference is not None
    assert set(demo.heatmap_reference.maps) == {"frontal", "lateral"}
    rng = np.random.default_rng(0)
    view = ViewInput("noise", (rng.random((224, 224)) * 255).astype(np.uint8))
    pos, neg = demo.encode_text(["pleural effusion", "no pleural effusion"])
    fmap = demo.feature_map(view)
    expected = contribution_map(fmap, pos, neg, demo.logit_scale, demo.heatmap_reference.nearest(fmap))
    coarse = demo._coarse_map(view, pos, neg, "contribution")
    np.testing.assert_allclose(coarse, expected, rtol=1e-5, atol=1e-6)
    raw = contribution_map(fmap, pos, neg, demo.logit_scale)
    assert not np.allclose(coarse, raw)


def test_frontal_and_lateral_phantoms_get_their_own_reference(demo: Engine, tmp_path: Path) -> None:
    from cxrclip.image_io import read_image
    from training.phantoms.dataset import GenerateOptions, generate_dataset

    generate_dataset(GenerateOptions(out=tmp_path, seed=5, size=224, dicom=False, split="test"),
                     studies=2, forced={0: [], 1: []})
    picked = []
    for path in sorted((tmp_path / "png").glob("*/*.png")):
        fmap = demo.feature_map(ViewInput(str(path), read_image(path).pixels))
        nearest = demo.heatmap_reference.nearest(fmap)
        kind = next(k for k, m in demo.heatmap_reference.maps.items() if m is nearest)
        picked.append((path.stem, kind))
    assert len(picked) == 4
    assert all(kind == ("lateral" if stem == "LATERAL" else "frontal") for stem, kind in picked), picked


def test_another_models_reference_is_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(DEMO, folder)
    info = json.loads((folder / REFERENCE_JSON).read_text())
    info["model_id"] = "some-other-model"
    (folder / REFERENCE_JSON).write_text(json.dumps(info))
    write_manifest(folder)
    assert Engine.load(folder).heatmap_reference is None
