"""SentenceBank: build in batches, nearest, save/load round trip, model-id checks."""
from __future__ import annotations

import numpy as np
import pytest

from cxrclip.sentence_bank import BankModelMismatchError, SentenceBank, SentenceBankError
from cxrclip.sentences import SentenceCount


def _random_bank(n: int = 50, dim: int = 8, seed: int = 0) -> SentenceBank:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return SentenceBank([f"sentence {i}" for i in range(n)], np.arange(n) + 1, emb, "model-a")


def test_build_batches_and_normalises() -> None:
    calls: list[int] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)

    items = [SentenceCount("a", 3), SentenceCount("bbb", 1), SentenceCount("cc", 2)]
    bank = SentenceBank.build(items, encode, "m", batch_size=2, progress=False, source="unit")
    assert calls == [2, 1]
    assert bank.sentences == ["a", "bbb", "cc"] and bank.counts.tolist() == [3, 1, 2]
    np.testing.assert_allclose(np.linalg.norm(bank.embeddings, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(bank.embeddings[1], np.array([3, 1, 0]) / np.sqrt(10), rtol=1e-6)
    assert bank.meta["source"] == "unit"


def test_build_rejects_empty() -> None:
    with pytest.raises(SentenceBankError, match="no sentences"):
        SentenceBank.build([], lambda t: np.zeros((0, 2)), "m", progress=False)


def test_nearest_returns_own_sentence_first_and_sorted() -> None:
    bank = _random_bank()
    hits = bank.nearest(bank.embeddings[17] * 3.0, k=5)
    assert hits[0].sentence == "sentence 17" and hits[0].count == 18
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    sims = [h.similarity for h in hits]
    assert sims == sorted(sims, reverse=True)
    expected = np.sort(bank.embeddings @ bank.embeddings[17])[::-1][:5]
    np.testing.assert_allclose(sims, expected, rtol=1e-5)


def test_nearest_k_larger_than_bank_and_bad_query() -> None:
    bank = _random_bank(n=3)
    assert len(bank.nearest(bank.embeddings[0], k=10)) == 3
    with pytest.raises(SentenceBankError, match="dimension 4"):
        bank.nearest(np.ones(4))
    with pytest.raises(SentenceBankError, match="norm"):
        bank.nearest(np.zeros(8))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_save_load_round_trip(tmp_path, dtype: str) -> None:
    bank = _random_bank()
    bank.meta["source"] = "x.csv"
    bank.save(tmp_path / "bank", dtype=dtype)
    loaded = SentenceBank.load(tmp_path / "bank", expected_model_id="model-a")
    assert loaded.sentences == bank.sentences and loaded.counts.tolist() == bank.counts.tolist()
    assert loaded.model_id == "model-a" and loaded.meta["source"] == "x.csv" and loaded.dim == 8
    atol = 1e-3 if dtype == "float16" else 0.0
    np.testing.assert_allclose(loaded.embeddings, bank.embeddings, atol=atol)
    assert loaded.embeddings.dtype == np.float32
    assert np.load(tmp_path / "bank" / "embeddings.npy").dtype == np.dtype(dtype)


def test_model_id_mismatch_raises_or_warns(tmp_path) -> None:
    _random_bank().save(tmp_path / "bank")
    with pytest.raises(BankModelMismatchError, match="'model-a'.*'model-b'.*cxrclip bank build"):
        SentenceBank.load(tmp_path / "bank", expected_model_id="model-b")
    with pytest.warns(UserWarning, match="model-b"):
        bank = SentenceBank.load(tmp_path / "bank", expected_model_id="model-b", strict=False)
    assert len(bank) == 50


def test_load_missing_dir_names_file(tmp_path) -> None:
    with pytest.raises(SentenceBankError, match="bank.json is missing"):
        SentenceBank.load(tmp_path)


def test_shape_mismatch_rejected() -> None:
    with pytest.raises(SentenceBankError, match="disagree"):
        SentenceBank(["a", "b"], [1, 1], np.zeros((3, 4)), "m")


def test_nearest_batch_equals_single_queries() -> None:
    bank = _random_bank()
    queries = bank.embeddings[[3, 40]] + 0.1
    batch = bank.nearest_batch(queries, k=4)
    for got, query in zip(batch, queries):
        single = bank.nearest(query, k=4)
        assert [n.sentence for n in got] == [n.sentence for n in single]
        np.testing.assert_allclose([n.similarity for n in got], [n.similarity for n in single], atol=1e-6)
    assert batch[0][0].sentence == "sentence 3" and batch[1][0].sentence == "sentence 40"
