"""Heatmap kinds of `cxrclip.heatmaps` and `Engine.similarity_map` on the bundled demo model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrclip.engine import Engine, ViewInput
from cxrclip.heatmaps import OcclusionGrid, agreement_map, contribution_map, occluded_inputs, occlusion_map

DEMO = Path(__file__).resolve().parents[2] / "assets" / "models" / "cxrclip-demo"


@pytest.fixture(scope="module")
def demo() -> Engine:
    return Engine.load(DEMO)


def _view(seed: int = 0) -> ViewInput:
    rng = np.random.default_rng(seed)
    return ViewInput(f"v{seed}", (rng.random((150, 140)) * 255).astype(np.uint8))


def test_contribution_map_sums_to_the_view_logit(demo: Engine) -> None:
    view = _view()
    pos, neg = demo.encode_text(["pleural effusion", "no pleural effusion"])
    cells = contribution_map(demo.feature_map(view), pos, neg, demo.logit_scale)
    emb = demo.embed_images([view.pixels])[0]
    logit = demo.logit_scale * float(emb @ pos - emb @ neg)
    assert cells.shape == demo.feature_map(view).shape[1:]
    assert float(cells.sum()) == pytest.approx(logit, rel=1e-3, abs=1e-3)


@pytest.mark.parametrize("kind", ["similarity", "probability", "contribution", "occlusion", "agreement"])
def test_every_kind_maps_onto_the_view(demo: Engine, kind: str) -> None:
    view = _view(1)
    heatmap = demo.similarity_map(view, "pneumothorax", kind=kind, max_side=70)
    assert heatmap.shape == (70, 65)
    assert np.isfinite(heatmap[35, 30]) and np.isnan(heatmap).any()   # NaN outside the crop


def test_unknown_kind_is_refused(demo: Engine) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        demo.similarity_map(_view(), "edema", kind="gradcam")


def test_occlusion_finds_the_patch_the_score_depends_on() -> None:
    """A toy encoder whose embedding follows the brightness of the lower-right corner."""
    def encode(batch: np.ndarray) -> np.ndarray:
        corner = batch[:, 0, 48:, 48:].mean(axis=(1, 2))
        emb = np.stack([corner, np.ones_like(corner)], axis=1)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    pixels = np.zeros((3, 64, 64), np.float32)
    pixels[:, 48:, 48:] = 4.0
    grid = OcclusionGrid.for_input(64)
    result = occlusion_map(encode, pixels, np.array([1.0, 0.0]), np.array([0.0, 1.0]), 10.0, grid)
    assert result.shape == (8, 8)
    row, col = np.unravel_index(np.argmax(result), result.shape)
    assert row >= 6 and col >= 6
    assert result[:4, :4].max() == pytest.approx(0.0, abs=1e-6)


def test_occluded_inputs_cover_the_image_with_mean_patches() -> None:
    pixels = np.arange(2 * 10 * 10, dtype=np.float32).reshape(2, 10, 10)
    grid = OcclusionGrid(patch=4, stride=3)
    batch, corners = occluded_inputs(pixels, grid)
    assert grid.starts(10) == [0, 3, 6]
    assert len(corners) == 9 and batch.shape == (9, 2, 10, 10)
    y, x = corners[4]
    assert np.allclose(batch[4, 1, y:y + 4, x:x + 4], pixels[1].mean())
    assert np.array_equal(batch[4, :, 0, :], pixels[:, 0, :])


def test_a_findings_contribution_map_explains_the_logit_behind_its_score(demo: Engine, monkeypatch) -> None:
    """`Engine.finding_map` draws with the zero-shot recipe's own vectors (the ensemble means),
    so without the normal reference its cells sum to the raw logit `zero_shot` turns into the
    probability the panel shows."""
    from cxrclip import heatmaps

    view = _view(2)
    seen = {}
    original = heatmaps.contribution_map

    def spy(fmap, pos, neg, scale, reference=None):
        seen.update(pos=pos, neg=neg)
        return original(fmap, pos, neg, scale, reference)

    monkeypatch.setattr(heatmaps, "contribution_map", spy)
    monkeypatch.setattr(demo, "heatmap_reference", None)
    on_view = demo.finding_map(view, "Pleural Effusion", max_side=70)
    assert on_view.shape == (70, 65)
    classifier = demo.zero_shot_classifier(["Pleural Effusion"])
    np.testing.assert_allclose(seen["pos"], classifier.positive[0], atol=1e-6)
    np.testing.assert_allclose(seen["neg"], classifier.negative[0], atol=1e-6)
    cells = original(demo.feature_map(view), seen["pos"], seen["neg"], demo.logit_scale)
    logit = classifier.logits(demo.embed_images([view.pixels])).view_logits[0, 0]
    assert float(cells.sum()) == pytest.approx(float(logit), rel=1e-3, abs=1e-3)


def test_agreement_is_the_geometric_mean_of_the_positive_parts() -> None:
    contribution = np.array([[1.0, -1.0], [4.0, np.nan]], np.float32)
    occlusion = np.array([[4.0, 2.0], [1.0, 1.0]], np.float32)
    result = agreement_map(contribution, occlusion)
    np.testing.assert_allclose(result, [[2.0, 0.0], [2.0, np.nan]], equal_nan=True)
    with pytest.raises(ValueError, match="same pixels"):
        agreement_map(contribution, occlusion[:1])


def test_a_findings_agreement_map_combines_its_contribution_and_occlusion_maps(demo: Engine) -> None:
    """On the view's pixels, and with one set of occluded forwards per view for every prompt."""
    view = _view(3)
    before = demo.cache_info()["occlusion"]
    contribution = demo.finding_map(view, "Cardiomegaly", kind="contribution", max_side=70)
    occlusion = demo.finding_map(view, "Cardiomegaly", kind="occlusion", max_side=70)
    agreement = demo.finding_map(view, "Cardiomegaly", kind="agreement", max_side=70)
    expected = np.sqrt(np.maximum(contribution, 0) * np.maximum(occlusion, 0))
    np.testing.assert_allclose(agreement, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert np.nanmin(agreement) >= 0 and np.nanmax(agreement) > 0
    demo.finding_map(view, "Pleural Effusion", kind="agreement", max_side=70)
    after = demo.cache_info()["occlusion"]
    assert after.misses - before.misses == 1 and after.hits - before.hits == 2


def test_occlusion_map_from_cached_embeddings_equals_a_fresh_one(demo: Engine) -> None:
    from cxrclip.heatmaps import occluded_embeddings, occlusion_map_from

    view = _view(4)
    pos, neg = demo.encode_text(["edema", "no edema"])
    pixels = demo._preprocess(view.pixels)
    grid = OcclusionGrid.for_input(pixels.shape[-1])
    embeddings = occluded_embeddings(lambda b: demo.towers.encode_image(b), pixels, grid)
    assert embeddings.occluded.shape == (len(grid.starts(pixels.shape[-1])) ** 2, demo.embed_dim)
    fresh = occlusion_map(lambda b: demo.towers.encode_image(b), pixels, pos, neg, demo.logit_scale, grid)
    np.testing.assert_allclose(occlusion_map_from(embeddings, pos, neg, demo.logit_scale), fresh, atol=1e-4)
    np.testing.assert_allclose(demo.similarity_map(view, "edema", "no edema", kind="occlusion", max_side=70),
                               demo._on_view(fresh, view, 70), atol=1e-3, equal_nan=True)


def test_the_engine_times_its_fastest_forward_and_counts_the_occlusion_pass(demo: Engine) -> None:
    view = _view(5)
    demo.feature_map(view)
    first = demo.image_forward_seconds
    assert first is not None and first > 0
    demo.feature_map(ViewInput("v5-again", view.pixels))
    assert demo.image_forward_seconds <= first                         # the fastest so far
    assert demo.occlusion_forwards() == len(demo.occluded_embeddings(view).occluded) + 1
