"""FindingsService (headless plugin logic) on the tiny random model."""
from __future__ import annotations

import numpy as np
import pytest

from plugins.cxrclip_findings.service import FindingsService, ModelLoadError, to_gray


@pytest.fixture(scope="module")
def service(tiny_model_dir, bank_dir):
    return FindingsService.load(tiny_model_dir, device="cpu", bank_dir=bank_dir)


def test_loading_keeps_the_verified_digests_of_the_model_files(service, tiny_model_dir):
    """The next launch skips re-reading unchanged model files (cxrclip.manifest.DigestCache)."""
    import json

    from cxrclip.manifest import MANIFEST_FILE
    from plugins.cxrclip_findings.service import DIGEST_CACHE_FILE
    from plugins.cxrclip_findings.text_cache import cache_root

    kept = json.loads((cache_root() / DIGEST_CACHE_FILE).read_text())
    for line in (tiny_model_dir / MANIFEST_FILE).read_text().splitlines():
        digest, relative = line.split(maxsplit=1)
        assert kept[str((tiny_model_dir / relative).resolve())][-1] == digest


def test_summary_reads_card(service, tiny_model_dir):
    s = service.summary()
    assert s.name == "Tiny plugin test model"
    assert s.backbone == "resnet18" and s.image_size == 64
    assert s.synthetic is True and s.device == "cpu" and s.path == str(tiny_model_dir)


def test_zero_shot_heatmaps_and_problem_views(service, tmp_path, helpers):
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s", shape=(60, 90)))

    class Broken:
        view_id = "broken-view"
        meta = type("M", (), {"display_label": "BROKEN"})()

        def display_uint8(self):
            raise OSError("truncated pixel data")

    prepared = service.prepare("s", handle.views + [Broken()])
    assert [p.view_id for p in prepared.problems] == ["broken-view"]
    assert "truncated pixel data" in prepared.problems[0].reason
    assert len(prepared.inputs.views) == 2
    findings = service.zero_shot(prepared)
    assert len(findings) == 14
    probs = [f.probability for f in findings]
    assert probs == sorted(probs, reverse=True)
    assert {v.view_id for v in findings[0].views} == {h.view_id for h in handle.views}
    maps = service.heatmaps(prepared, "right pleural effusion")
    assert set(maps) == {h.view_id for h in handle.views}
    assert all(m.shape == (60, 90) and m.dtype == np.float32 for m in maps.values())
    # wide image: centre crop leaves the left/right edges outside the model's view
    some = next(iter(maps.values()))
    assert np.isnan(some[:, 0]).all() and np.isfinite(some[:, 45]).all()


def test_prompt_score_uses_custom_negative(service, tmp_path, helpers):
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    prepared = service.prepare("s", handle.views)
    default = service.score(prepared, "large right pneumothorax")
    custom = service.score(prepared, "large right pneumothorax", "normal chest")
    assert default.negative.startswith("no ") and custom.negative == "normal chest"
    assert 0.0 <= default.probability <= 1.0


def test_nearest_sentences_built_from_source(service, tmp_path, helpers):
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    prepared = service.prepare("s", handle.views)
    top = service.nearest_sentences(prepared, k=3)
    assert len(top) == 3
    sims = [n.similarity for n in top]
    assert sims == sorted(sims, reverse=True)
    # by view: the query is that view's own embedding
    view_id = handle.views[1].view_id
    by_view = service.nearest_sentences(prepared, view_id=view_id, k=6)
    emb = service.engine.encode_views([v for v in prepared.inputs.views if v.view_id == view_id])[0]
    bank = service.bank()
    expected = bank.sentences[int(np.argmax(bank.embeddings @ emb))]
    assert by_view[0].sentence == expected


def test_nearest_sentences_leave_out_what_contradicts_the_findings(service, tmp_path, helpers,
                                                                  monkeypatch):
    """A calibrated "Pleural Effusion absent, Cardiomegaly present" study: no sentence that asserts
    an effusion or a normal heart; without a prior, no comparison with one."""
    from types import SimpleNamespace

    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    prepared = service.prepare("s", handle.views)
    everything = {n.sentence for n in service.nearest_sentences(prepared, k=7, has_prior=True)}
    assert "Right pleural effusion." in everything  # the uncalibrated tiny model filters nothing
    scores = [SimpleNamespace(finding="Pleural Effusion", positive=False),
              SimpleNamespace(finding="Cardiomegaly", positive=True),
              SimpleNamespace(finding="No Finding", positive=False)]
    monkeypatch.setattr(service, "zero_shot", lambda _p: scores)
    kept = [n.sentence for n in service.nearest_sentences(prepared, k=7)]
    assert set(kept) == {"No pleural effusion.", "The heart is enlarged.", "Large right pneumothorax.",
                         "The lungs are clear."}


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        FindingsService.load(tmp_path / "nope")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError) as info:  # the loader's own message: file and fix
        FindingsService.load(broken)
    assert str(broken / "config.json") in str(info.value)
    assert not str(info.value).startswith("cannot load model")


def test_unexpected_load_error_names_model_and_type(tmp_path, monkeypatch):
    from plugins.cxrclip_findings import service as service_module

    def explode(*_args, **_kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(service_module.CachedTextEngine, "load", explode)
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelLoadError, match=r"cannot load model .*/m: RuntimeError: out of memory"):
        FindingsService.load(tmp_path / "m")


def test_to_gray():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 90
    assert to_gray(rgb).tolist() == [[30, 30], [30, 30]]
    with pytest.raises(ValueError, match="shape"):
        to_gray(np.zeros((2, 2, 2, 2)))


def test_warm_up_persists_prompt_embeddings(service, tmp_path):
    from plugins.cxrclip_findings.text_cache import PromptEmbeddingStore

    service.warm_up(["Pneumothorax", "Edema"])
    store = PromptEmbeddingStore.for_model(f"{service.engine.model_id}-{service.engine.runtime}")
    assert store.path.is_file() and len(store) >= 8  # 3 class prompts + 1 negative each
    from cxrclip.prompts import class_prompts

    prompt = class_prompts("Edema")[0]
    direct = service.engine.embed_texts([prompt])[0]
    assert np.allclose(store.get(prompt), direct, atol=1e-6)  # float32 on disk: exact
    assert np.allclose(service.engine.encode_text([prompt])[0], direct, atol=2e-3)


def test_cached_heatmap_equals_engine_map_and_reuses_forward(service, tmp_path, helpers):
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s", shape=(50, 70)))
    prepared = service.prepare("s", handle.views)
    assert all(service.prefetch_map(prepared, v.view_id) for v in prepared.inputs.views)
    assert not service.prefetch_map(prepared, "unknown")
    forwards = service.engine.cache_info()["feature_map"].misses
    occluded = service.engine.cache_info()["occlusion"].misses
    maps = service.heatmaps(prepared, "small left pleural effusion")
    maps2 = service.heatmaps(prepared, "cardiomegaly")
    assert service.engine.cache_info()["feature_map"].misses == forwards  # no image forward after the prefetch
    assert service.engine.cache_info()["occlusion"].misses == occluded    # nor an occluded one
    view = prepared.inputs.views[0]
    expected = service.engine.similarity_map(view, "small left pleural effusion", kind="agreement")
    np.testing.assert_allclose(maps[view.view_id], expected, atol=1e-5, equal_nan=True)
    plain = service.engine.similarity_map(view, "small left pleural effusion")  # cosine: another map
    assert not np.allclose(np.nan_to_num(plain), np.nan_to_num(expected))
    assert not np.allclose(np.nan_to_num(maps[view.view_id]), np.nan_to_num(maps2[view.view_id]))
    small = service.heatmaps(prepared, "cardiomegaly", max_side=35)[view.view_id]
    assert small.shape == (25, 35)  # same aspect as the 50 x 70 image


def test_a_model_too_slow_for_occlusion_here_draws_contribution_maps(service, tmp_path, helpers, monkeypatch):
    """The agreement map needs one image forward per occlusion patch: judged from the fastest
    one-view forward so far, a model whose pass would exceed the budget gets contribution maps
    (and its prefetch skips the occluded forwards)."""
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s", shape=(50, 70)))
    prepared = service.prepare("s", handle.views)
    engine = service.engine
    from cxrclip.engine import ViewInput

    first = prepared.inputs.views[0]
    engine.feature_map(ViewInput(first.view_id + "-warm", first.pixels))  # a timed forward past warm-up
    assert service.map_kind_for(prepared) == "agreement"      # the tiny model: well under a ms per forward
    assert engine.image_forward_seconds is not None and engine.image_forward_seconds > 0
    monkeypatch.setattr(engine, "occlusion_forwards", lambda: 10**12)  # any forward time is over budget
    assert service.heatmap_kind() == "contribution"
    assert service.heatmap_caption("contribution").startswith("contribution to the score")
    assert service.heatmap_caption("agreement").startswith("evidence for the score")
    view = prepared.inputs.views[0]
    engine.clear_caches()
    occluded = engine.cache_info()["occlusion"].misses
    assert service.prefetch_map(prepared, view.view_id)
    maps = service.finding_heatmaps(prepared, "Pleural Effusion")
    assert engine.cache_info()["occlusion"].misses == occluded              # no occlusion pass at all
    expected = engine.finding_map(view, "Pleural Effusion", kind="contribution", max_side=512)
    np.testing.assert_allclose(maps[view.view_id], expected, atol=1e-5, equal_nan=True)


@pytest.mark.gpu
def test_service_on_cuda_matches_cpu(service, tiny_model_dir, bank_dir, tmp_path, helpers):
    cuda = FindingsService.load(tiny_model_dir, device="cuda", bank_dir=bank_dir)
    assert cuda.summary().device.startswith("cuda")
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    on_gpu, on_cpu = cuda.prepare("s", handle.views), service.prepare("s", handle.views)
    gpu_scores = {f.finding: f.probability for f in cuda.zero_shot(on_gpu)}
    cpu_scores = {f.finding: f.probability for f in service.zero_shot(on_cpu)}
    assert gpu_scores == pytest.approx(cpu_scores, abs=1e-3)
    view_id = handle.views[0].view_id
    np.testing.assert_allclose(cuda.heatmaps(on_gpu, "edema")[view_id],
                               service.heatmaps(on_cpu, "edema")[view_id], atol=1e-3,
                               equal_nan=True)
