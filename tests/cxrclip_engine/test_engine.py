"""Engine: caches, scoring math, aggregation, zero-shot, similarity maps (tiny CPU model)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from cxrclip.engine import Engine, LRUCache, StudyInput, ViewInput, binary_probability


def _image(seed: int, shape: tuple[int, int] = (80, 72)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _study(n: int = 3) -> StudyInput:
    return StudyInput("study-1", [ViewInput(f"v{i}", _image(i), label=f"view {i}") for i in range(n)])


def test_lru_cache_eviction_order_and_counters() -> None:
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1          # a becomes most recent
    cache.put("c", 3)                   # evicts b, the least recently used
    assert cache.keys() == ["a", "c"]
    assert cache.get("b") is None
    info = cache.info()
    assert (info.hits, info.misses, info.size, info.maxsize) == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="maxsize"):
        LRUCache(0)


def test_encode_views_caches_and_batches(engine: Engine, monkeypatch) -> None:
    calls: list[int] = []
    original = engine.model.encode_image_and_map

    def counting(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(pixels.shape[0])
        return original(pixels)

    monkeypatch.setattr(engine.model, "encode_image_and_map", counting)
    views = _study().views
    first = engine.encode_views(views)
    assert calls == [3] and first.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    second = engine.encode_views(views[::-1])
    assert calls == [3], "second call must not run the model"
    np.testing.assert_array_equal(second, first[::-1])
    engine.encode_views(views + [ViewInput("new", _image(9))])
    assert calls == [3, 1], "only the uncached view is encoded"
    assert engine.cache_info()["image"].hits == 3 + 3


def test_view_vectors_mean_map_is_the_embedding_before_normalisation(engine: Engine) -> None:
    """The OOD guard's vector: the spatial mean of the projected feature map, which for the
    ResNet tower with a linear projection is the image embedding before L2 normalisation."""
    views = _study().views
    embeddings, mean_maps = engine.view_vectors(views)
    for view, mean_map in zip(views, mean_maps):
        np.testing.assert_allclose(mean_map, engine.feature_map(view).mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    lengths = np.linalg.norm(mean_maps, axis=1, keepdims=True)
    assert np.all(np.abs(lengths - 1.0) > 1e-3), "the mean map keeps its length"
    np.testing.assert_allclose(mean_maps / lengths, embeddings, atol=1e-5)
    cached, _ = engine.view_vectors(views)
    np.testing.assert_array_equal(cached, embeddings)
    batch_embeddings, batch_maps = engine.image_vectors([v.pixels for v in views])
    np.testing.assert_allclose(batch_maps, mean_maps, rtol=1e-5, atol=1e-6)


def test_encode_text_lru_hits_and_eviction(tiny_model_dir) -> None:
    engine = Engine.load(tiny_model_dir, device="cpu", text_cache_size=2)
    a = engine.encode_text(["pleural effusion", "pneumothorax"])
    assert a.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    again = engine.encode_text("pleural effusion")
    np.testing.assert_allclose(again[0], a[0], atol=1e-6)
    info = engine.cache_info()["text"]
    assert (info.hits, info.misses) == (1, 2)
    engine.encode_text("cardiomegaly")  # evicts "pneumothorax" (least recently used)
    assert engine._text_cache.keys() == ["pleural effusion", "cardiomegaly"]
    with pytest.raises(ValueError, match="non-empty"):
        engine.encode_text([""])


def test_encode_text_matches_unpadded_single_prompts(engine: Engine) -> None:
    batch = engine.encode_text(["edema", "a much longer prompt about a small left pleural effusion"])
    engine.clear_caches()
    single = engine.encode_text(["edema"])
    np.testing.assert_allclose(batch[0], single[0], atol=1e-5)


def test_score_probability_is_softmax_of_returned_similarities(engine: Engine) -> None:
    result = engine.score(_study(), ["small left pleural effusion", "cardiomegaly"])
    scale = engine.logit_scale
    assert scale == pytest.approx(1 / 0.07, rel=1e-5)
    assert [p.negative for p in result.prompts] == ["no small left pleural effusion", "no cardiomegaly"]
    for prompt in result.prompts:
        for view in prompt.views:
            logits = torch.tensor([view.negative_similarity, view.similarity]) * scale
            assert view.probability == pytest.approx(torch.softmax(logits, 0)[1].item(), abs=1e-6)


def test_mean_aggregation_matches_hand_computation(engine: Engine) -> None:
    study = _study()
    result = engine.score(study, ["pneumonia"], negatives=["no evidence of pneumonia"])
    emb = engine.encode_views(study.views)
    mean = emb.mean(axis=0)
    mean /= np.linalg.norm(mean)
    pos, neg = engine.encode_text(["pneumonia", "no evidence of pneumonia"])
    score = result.prompts[0]
    assert score.negative == "no evidence of pneumonia"
    assert score.similarity == pytest.approx(float(mean @ pos), abs=1e-5)
    assert score.probability == pytest.approx(float(binary_probability(mean @ pos, mean @ neg, engine.logit_scale)),
                                              abs=1e-5)
    assert [v.view_id for v in score.views] == ["v0", "v1", "v2"]
    assert [v.similarity for v in score.views] == pytest.approx((emb @ pos).tolist(), abs=1e-5)


def test_max_aggregation_and_bad_arguments(engine: Engine) -> None:
    result = engine.score(_study(), "edema", negatives="normal chest", aggregate="max")
    score = result.prompts[0]
    assert score.similarity == pytest.approx(max(v.similarity for v in score.views))
    assert score.probability == pytest.approx(max(v.probability for v in score.views))
    assert result.to_dict()["prompts"][0]["negative"] == "normal chest"
    with pytest.raises(ValueError, match="aggregate"):
        engine.score(_study(), "edema", aggregate="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 negatives for 1 prompts"):
        engine.score(_study(), ["edema"], negatives=["a", "b"])
    with pytest.raises(ValueError, match="no views"):
        engine.score(StudyInput("empty", []), "edema")


def test_zero_shot_returns_all_14_sorted(engine: Engine) -> None:
    from cxrclip.prompts import CHEXPERT_14

    scores = engine.zero_shot(_study(2), max_prompts=2)
    assert sorted(s.finding for s in scores) == sorted(CHEXPERT_14)
    probs = [s.probability for s in scores]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 < p < 1.0 for p in probs) and all(len(s.views) == 2 for s in scores)


def test_zero_shot_uses_prompt_ensembles(engine: Engine) -> None:
    from cxrclip.prompts import class_prompts

    study = _study(1)
    (score,) = engine.zero_shot(study, ["Pneumothorax"], max_prompts=3)
    positives = class_prompts("Pneumothorax", max_prompts=3)
    pos = engine.encode_text(positives).mean(0)
    neg = engine.encode_text(["no pneumothorax"])[0]
    pos, neg = pos / np.linalg.norm(pos), neg / np.linalg.norm(neg)
    emb = engine.encode_views(study.views)[0]
    assert score.similarity == pytest.approx(float(emb @ pos), abs=1e-5)
    assert score.probability == pytest.approx(float(binary_probability(emb @ pos, emb @ neg, engine.logit_scale)),
                                              abs=1e-5)


def test_feature_map_mean_is_global_embedding_direction(engine: Engine) -> None:
    from cxrclip.preprocess import preprocess_image

    x = preprocess_image(_image(3), engine.config.preprocess).unsqueeze(0)
    with torch.inference_mode():
        fmap = engine.model.image_feature_map(x)
        global_emb = engine.model.encode_image(x, normalize=True)
    direction = torch.nn.functional.normalize(fmap.mean(dim=(2, 3)), dim=-1)
    torch.testing.assert_close(direction, global_emb, atol=1e-5, rtol=1e-4)


def test_similarity_map_geometry_for_wide_image(engine: Engine) -> None:
    wide = ViewInput("wide", _image(5, shape=(40, 100)))
    sim = engine.similarity_map(wide, "pleural effusion")
    assert sim.shape == (40, 100) and sim.dtype == np.float32
    # shorter side 40 -> 64, width 100 -> 160; the 64-px centre crop covers x in [48, 112)
    # of 160, i.e. original columns [30, 70): pixel centres outside that are NaN.
    assert np.isnan(sim[:, :30]).all() and np.isnan(sim[:, 70:]).all()
    inside = sim[:, 30:70]
    assert np.isfinite(inside).all() and (np.abs(inside) <= 1.0 + 1e-5).all()
    prob = engine.similarity_map(wide, "pleural effusion", kind="probability")
    assert np.nanmin(prob) >= 0.0 and np.nanmax(prob) <= 1.0
    assert np.array_equal(np.isnan(prob), np.isnan(sim))


def test_similarity_map_cells_match_feature_map(engine: Engine) -> None:
    """On a square image the map's mean over the crop tracks the per-cell cosine."""
    from cxrclip.preprocess import preprocess_image

    pixels = _image(6, shape=(64, 64))
    sim = engine.similarity_map(ViewInput("sq", pixels), "edema")
    x = preprocess_image(pixels, engine.config.preprocess).unsqueeze(0)
    with torch.inference_mode():
        fmap = torch.nn.functional.normalize(engine.model.image_feature_map(x)[0], dim=0)
    cells = torch.einsum("dhw,d->hw", fmap, torch.from_numpy(engine.encode_text("edema")[0])).numpy()
    h, w = cells.shape  # 2 x 2 for resnet18 at 64 px
    assert sim.shape == (64, 64) and not np.isnan(sim).any()
    assert sim[0, 0] == pytest.approx(cells[0, 0], abs=1e-5)
    assert sim[-1, -1] == pytest.approx(cells[h - 1, w - 1], abs=1e-5)


def test_engine_is_thread_safe(engine: Engine) -> None:
    study = _study()
    expected = engine.score(study, ["edema"]).prompts[0].probability
    engine.clear_caches()
    results: list[float] = []

    def work() -> None:
        results.append(engine.score(study, ["edema"]).prompts[0].probability)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == pytest.approx([expected] * 4, abs=1e-6)


def test_load_missing_dir_message(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Engine.load(tmp_path / "nope")


def test_study_embedding_and_bank_check(engine: Engine, tmp_path) -> None:
    from cxrclip.sentence_bank import BankModelMismatchError, SentenceBank

    study = _study(2)
    emb = engine.encode_views(study.views)
    expected = emb.mean(0) / np.linalg.norm(emb.mean(0))
    np.testing.assert_allclose(engine.study_embedding(study), expected, atol=1e-6)
    SentenceBank(["a", "b"], [1, 1], np.eye(2, 32), engine.model_id).save(tmp_path / "ok")
    assert len(engine.load_bank(tmp_path / "ok")) == 2
    SentenceBank(["a"], [1], np.ones((1, 32)), "other-model").save(tmp_path / "bad")
    with pytest.raises(BankModelMismatchError, match="other-model"):
        engine.load_bank(tmp_path / "bad")


@pytest.mark.gpu
def test_cuda_engine_matches_cpu(engine: Engine, tiny_model_dir) -> None:
    gpu = Engine.load(tiny_model_dir, device="cuda")
    assert gpu.device.type == "cuda"
    study = _study()
    cpu_result = engine.score(study, ["edema"]).prompts[0]
    gpu_result = gpu.score(study, ["edema"]).prompts[0]
    assert gpu_result.similarity == pytest.approx(cpu_result.similarity, abs=1e-3)
    sim = gpu.similarity_map(study.views[0], "edema")
    assert sim.shape == study.views[0].pixels.shape


def test_bfloat16_engine_close_to_float32(engine: Engine, tiny_model_dir) -> None:
    fast = Engine.load(tiny_model_dir, device="cpu", dtype="bfloat16")
    assert next(fast.model.parameters()).dtype == torch.bfloat16
    assert fast.logit_scale == pytest.approx(engine.logit_scale, rel=1e-6)
    study = _study(2)
    ref = engine.score(study, ["edema"]).prompts[0]
    got = fast.score(study, ["edema"]).prompts[0]
    assert isinstance(got.similarity, float)
    assert got.similarity == pytest.approx(ref.similarity, abs=0.03)
    assert fast.encode_views(study.views).dtype == np.float32
    assert fast.similarity_map(study.views[0], "edema").dtype == np.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        Engine.load(tiny_model_dir, device="cpu", dtype="int8")


def test_similarity_map_for_swin_uses_patch_tokens(tiny_loaded) -> None:
    from transformers import AutoConfig

    from cxrclip.config import ImageEncoderConfig, ModelConfig, PreprocessConfig, ProjectionConfig
    from cxrclip.model import CXRClip

    torch.manual_seed(0)
    config = ModelConfig(
        image=ImageEncoderConfig(name="swin_tiny", image_size=64,
                                 options={"embed_dim": 8, "depths": [1, 1], "num_heads": [1, 2], "window_size": 4}),
        text=tiny_loaded.config.text, projection=ProjectionConfig(dim=32), preprocess=PreprocessConfig.half(64),
    )
    text_config = AutoConfig.from_pretrained(tiny_loaded.config.text.path)
    swin = Engine(CXRClip(config, text_model_config=text_config), tiny_loaded.tokenizer, "swin-test", "cpu")
    tall = ViewInput("tall", _image(7, shape=(128, 64)))
    sim = swin.similarity_map(tall, "edema")
    assert sim.shape == (128, 64)
    # 64 wide -> crop covers rows [32, 96) of 128: outside rows are NaN, inside finite cosines.
    assert np.isnan(sim[:32]).all() and np.isnan(sim[96:]).all()
    assert np.isfinite(sim[32:96]).all() and (np.abs(sim[32:96]) <= 1 + 1e-5).all()
    assert swin.score(StudyInput("s", [tall]), "edema").prompts[0].views[0].view_id == "tall"


def test_similarity_map_reuses_feature_map(engine: Engine, monkeypatch) -> None:
    calls: list[int] = []
    original = engine.model.image_feature_map

    def counting(pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        calls.append(pixels.shape[0])
        return original(pixels, normalize=normalize)

    monkeypatch.setattr(engine.model, "image_feature_map", counting)
    view = ViewInput("m", _image(8))
    first = engine.similarity_map(view, "edema")
    engine.similarity_map(view, "pneumothorax", kind="probability")
    again = engine.similarity_map(view, "edema")
    assert calls == [1]
    np.testing.assert_array_equal(first, again)
    assert engine.cache_info()["feature_map"].hits == 2


def test_similarity_map_max_side_keeps_aspect_and_crop(engine: Engine) -> None:
    wide = ViewInput("wide2", _image(5, shape=(40, 100)))
    small = engine.similarity_map(wide, "edema", max_side=50)
    assert small.shape == (20, 50)
    # Same crop in relative terms: original columns [30, 70) of 100 -> [15, 35) of 50.
    assert np.isnan(small[:, :15]).all() and np.isnan(small[:, 35:]).all()
    assert np.isfinite(small[:, 15:35]).all()
    assert engine.similarity_map(wide, "edema", max_side=1000).shape == (40, 100)
    with pytest.raises(ValueError, match="max_side"):
        engine.similarity_map(wide, "edema", max_side=0)


def test_embed_texts_keeps_input_order_when_batching_by_length(engine: Engine) -> None:
    texts = ["a long prompt about a large right pleural effusion with atelectasis", "edema", "mild cardiomegaly"]
    together = engine.embed_texts(texts, batch_size=2)
    one_by_one = np.concatenate([engine.embed_texts([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert engine.embed_texts([]).shape == (0, 32)
