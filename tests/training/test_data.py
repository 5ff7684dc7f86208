"""Data pipeline: augmentation geometry, text pairs, collate padding, unreadable images skipped."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrclip.config import PreprocessConfig
from training.config import AugmentConfig
from training.data.augment import TrainAugment, random_resized_crop
from training.data.dataset import EpochTaggedSampler, StudyPairDataset, TrainCollate
from training.data.image_cache import CacheJob, build_cache, read_gray_uint8
from training.data.manifest import read_manifest
from training.data.text import (LABEL_LOSS_FINDINGS, balancing_weights, label_prompt_pairs, label_vector, report_sentences,
                                shuffle_sentences, study_texts)


def test_zoom_out_crop_pads_with_black():
    img = np.full((40, 40), 200, np.uint8)
    rng = np.random.default_rng(0)
    out = random_resized_crop(img, 20, rng, scale=(1.44, 1.44), ratio=(1.0, 1.0))
    assert out.shape == (20, 20)
    assert (out == 0).any() and (out == 200).any()  # window 48 px > 40 px image → black border
    same = random_resized_crop(img, 20, np.random.default_rng(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert (same == 200).all()


def test_augment_is_deterministic_per_rng():
    aug = TrainAugment(AugmentConfig(), 24)
    img = np.random.default_rng(1).integers(0, 256, (50, 60), dtype=np.uint8)
    a = aug(img, np.random.default_rng(5))
    b = aug(img, np.random.default_rng(5))
    assert a.shape == (24, 24) and a.dtype == np.uint8 and np.array_equal(a, b)


def test_text_pairs():
    assert report_sentences("A b. C d? E!") == ["A b.", "C d?", "E!"]
    shuffled = shuffle_sentences("One. Two. Three. Four.", np.random.default_rng(0))
    assert sorted(report_sentences(shuffled)) == sorted(["One.", "Two.", "Three.", "Four."])


def test_study_texts_sections_and_labels(toy_manifest):
    m = read_manifest(toy_manifest)
    by_id = {r.study_id: r for r in m.records}
    both = by_id["train002"]  # has findings and impression
    t1, t2 = study_texts(both, np.random.default_rng(0), shuffle=False)
    assert {t1, t2} == {both.findings, both.impression}
    label_only = by_id["train000"]
    t1, t2 = study_texts(label_only, np.random.default_rng(0))
    assert t1 and t2 and "edema" in (t1 + t2).lower()


def _dataset(manifest):
    return StudyPairDataset([read_manifest(manifest)], "train", PreprocessConfig(image_size=16, resize_shorter=16),
                            TrainAugment(AugmentConfig(), 16), seed=3)


def test_unreadable_image_is_replaced_and_counted(toy_manifest):
    ds = _dataset(toy_manifest)
    ok = ds[(1, 0)]
    assert ok["skipped"] == 0 and ok["image"].shape == (3, 16, 16)
    (toy_manifest / "images" / "train001" / "v0.png").write_bytes(b"not a png")
    (toy_manifest / "images" / "train003" / "v0.png").unlink()
    bad = ds[(1, 0)]
    assert bad["skipped"] >= 1 and bad["study_id"] != "train001"
    counts = sum(ds[(i, 0)]["skipped"] for i in range(len(ds)))
    assert counts >= 2


def test_same_sample_for_same_epoch_and_index(toy_manifest):
    ds = _dataset(toy_manifest)
    a, b, c = ds[(2, 1)], ds[(2, 1)], ds[(2, 2)]
    assert torch.equal(a["image"], b["image"]) and a["text"] == b["text"]
    assert not torch.equal(a["image"], c["image"])


def test_collate_pads_to_longest(toy_manifest, tiny_text_dir):
    from transformers import AutoTokenizer

    ds = _dataset(toy_manifest)
    batch = TrainCollate(AutoTokenizer.from_pretrained(str(tiny_text_dir)), 64)([ds[(i, 0)] for i in range(3)])
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape[1] == int(lengths.max()) < 64
    assert batch["image"].shape == (3, 3, 16, 16) and batch["skipped"] == 0


def test_sampler_resumes_mid_epoch(toy_manifest):
    ds = _dataset(toy_manifest)
    s = EpochTaggedSampler(ds, num_replicas=2, rank=1, seed=0)
    s.set_epoch(3)
    full = list(s)
    s.set_start(2)
    assert list(s) == full[2:] and all(e == 3 for _, e in full)
    assert list(s) == full  # start applies to one iteration only


def test_weighted_sampler_draws_by_weight_splits_ranks_and_resumes(toy_manifest):
    ds = _dataset(toy_manifest)
    n = len(ds)
    weights = np.ones(n)
    weights[0] = 50.0                       # study 0 is drawn about half the time
    ranks = [EpochTaggedSampler(ds, num_replicas=2, rank=r, seed=5, weights=weights) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(4)
    drawn = [list(s) for s in ranks]
    assert all(len(d) == len(ranks[0]) == ranks[0].num_samples for d in drawn)   # an epoch keeps its length
    assert all(e == 4 for d in drawn for _, e in d)
    again = EpochTaggedSampler(ds, num_replicas=2, rank=1, seed=5, weights=weights)
    again.set_epoch(4)
    again.set_start(1)
    assert list(again) == drawn[1][1:]                                            # resume mid-epoch
    many = EpochTaggedSampler(ds, num_replicas=1, rank=0, seed=0, weights=weights)
    counts = np.zeros(n)
    for epoch in range(200):
        many.set_epoch(epoch)
        for i, _ in many:
            counts[i] += 1
    assert counts[0] / counts.sum() == pytest.approx(50 / (50 + n - 1), abs=0.03)
    with pytest.raises(ValueError, match="positive weights"):
        EpochTaggedSampler(ds, num_replicas=1, rank=0, seed=0, weights=np.zeros(n))


def test_oversampling_weights_take_the_largest_multiplier_of_a_studys_findings():
    from training.data.text import LABEL_LOSS_FINDINGS, balancing_weights, oversampling_weights

    def row(*present: str) -> np.ndarray:
        return np.array([1.0 if f in present else 0.0 for f in LABEL_LOSS_FINDINGS], dtype=np.float32)

    vectors = np.stack([row("Fracture", "Edema"), row("Edema"), row(), row("Fracture")])
    vectors[2, 0] = np.nan                              # an uncertain label counts as not present
    weights = oversampling_weights(vectors, {"Fracture": 4.0, "Edema": 2.0})
    assert weights.tolist() == [4.0, 2.0, 1.0, 4.0]
    # balancing sees the studies as often as they are drawn: fracture 8 present vs 3 absent draws
    fracture = LABEL_LOSS_FINDINGS.index("Fracture")
    assert balancing_weights(vectors, sampling=weights)[fracture] == pytest.approx(1.0)
    assert balancing_weights(vectors)[fracture] == pytest.approx(1.0)
    edema = LABEL_LOSS_FINDINGS.index("Edema")
    assert balancing_weights(vectors, sampling=np.array([1.0, 1.0, 6.0, 1.0]))[edema] == pytest.approx(3.5)


def test_image_cache_resizes_and_skips(tmp_path):
    src = tmp_path / "src.png"
    from PIL import Image

    Image.fromarray(np.arange(300 * 200, dtype=np.uint32).reshape(300, 200).astype(np.uint16)).save(src)
    job = CacheJob(src, tmp_path / "out" / "a.png", 50)
    r1 = build_cache([job, CacheJob(tmp_path / "missing.png", tmp_path / "out" / "b.png", 50)])
    assert r1.written == 1 and len(r1.failed) == 1
    cached = read_gray_uint8(job.target)
    assert cached.shape == (75, 50) and cached.dtype == np.uint8 and cached.max() > 200
    assert build_cache([job]).skipped == 1


def test_label_vector_reads_aliases_and_leaves_uncertain_out():
    got = label_vector({"Fracture": 1, "Edema": -1, "Pleural_Effusion": 0, "Effusion": 0, "Hernia": 1,
                        "pneumothorax": 1})
    want = {f: 0.0 for f in LABEL_LOSS_FINDINGS} | {"Fracture": 1.0, "Pneumothorax": 1.0}
    assert len(got) == 13 and "No Finding" not in LABEL_LOSS_FINDINGS
    for finding, value in zip(LABEL_LOSS_FINDINGS, got):
        assert np.isnan(value) if finding == "Edema" else value == want[finding], finding


def test_label_prompt_pairs_use_label_sentences_not_class_prompts():
    import json

    from cxrclip.prompts import class_prompts
    from cxrclip.resources import asset_path

    spec = json.loads(asset_path("prompts/label_sentences.json").read_text(encoding="utf-8"))
    positives, negatives = label_prompt_pairs(np.random.default_rng(5))
    assert (positives, negatives) == label_prompt_pairs(np.random.default_rng(5))  # the same after a resume
    for finding, pos, neg in zip(LABEL_LOSS_FINDINGS, positives, negatives):
        assert pos in spec[finding]["positive"] and neg in spec[finding]["negative"]
        assert pos not in class_prompts(finding)


def test_collate_stacks_label_vectors(toy_manifest, tiny_text_dir):
    from transformers import AutoTokenizer

    ds = _dataset(toy_manifest)
    samples = [ds[(i, 0)] for i in range(4)]
    batch = TrainCollate(AutoTokenizer.from_pretrained(str(tiny_text_dir)), 64)(samples)
    assert batch["labels"].shape == (4, 13) and batch["labels"].dtype == torch.float32
    for row, sample in zip(batch["labels"].numpy(), samples):
        np.testing.assert_array_equal(row, sample["labels"])


def test_balancing_weights_are_negatives_over_positives_capped():
    nan = np.nan
    vectors = np.array([[1, 0, 0, nan], [0, 0, 0, 1], [0, 0, 0, 1], [0, 1, 0, 0]] + [[0, 0, 0, 0]] * 96, dtype=np.float32)
    # finding 0: 1 positive, 99 negatives -> capped at 20; finding 1: 1 / 99 -> 20;
    # finding 2: no positive -> 1; finding 3: 2 positives, 97 negatives (one unknown) -> 48.5 -> 20
    np.testing.assert_allclose(balancing_weights(vectors), [20, 20, 1, 20])
    np.testing.assert_allclose(balancing_weights(vectors, cap=100), [99, 99, 1, 48.5])
    np.testing.assert_allclose(balancing_weights(np.array([[1, 1], [0, 1], [0, 0]], np.float32)), [2, 1])


def test_twin_partners_pair_ids_by_suffix():
    from training.data.dataset import twin_partners

    ids = ["a", "b-intact", "c", "a-intact", "b-intact-intact"]
    assert twin_partners(ids, "-intact").tolist() == [3, 4, -1, 0, 1]
    with pytest.raises(ValueError, match="suffix"):
        twin_partners(ids, "")


def test_sampler_draws_each_twin_right_after_its_study_and_keeps_the_epoch_length(toy_manifest):
    ds = _dataset(toy_manifest)
    n = len(ds)
    partners = np.full(n, -1)
    partners[0], partners[1] = 1, 0                     # studies 0 and 1 are twins
    weights = np.ones(n)
    weights[0] = 20.0
    plain = EpochTaggedSampler(ds, num_replicas=1, rank=0, seed=2, weights=weights)
    twins = EpochTaggedSampler(ds, num_replicas=1, rank=0, seed=2, weights=weights, partners=partners)
    plain.set_epoch(1)
    twins.set_epoch(1)
    drawn, paired = [i for i, _ in plain], [i for i, _ in twins]
    assert len(paired) == len(drawn)
    expected = []
    for i in drawn:                                     # the same draw with each twin inserted after
        expected += [i, int(partners[i])] if partners[i] >= 0 else [i]
    assert paired == expected[:len(drawn)]
    assert any(paired[k:k + 2] == [0, 1] for k in range(len(paired) - 1))
    twins.set_start(3)
    assert [i for i, _ in twins] == paired[3:]          # resume mid-epoch
    with pytest.raises(ValueError, match="partners"):
        EpochTaggedSampler(ds, num_replicas=1, rank=0, seed=0, partners=np.array([-1]))
