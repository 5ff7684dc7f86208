"""The out-of-distribution guard on synthetic embeddings: fit, threshold, verdicts, files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cxrclip.ood import OODError, OODGuard, shrunk_covariance


def _cluster(n: int, seed: int, dim: int = 32, centre_seed: int = 0) -> np.ndarray:
    centre = np.random.default_rng(centre_seed).normal(size=dim)
    x = centre / np.linalg.norm(centre) + 0.05 * np.random.default_rng(seed).normal(size=(n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_in_distribution_passes_and_far_embeddings_are_flagged() -> None:
    guard = OODGuard.fit(_cluster(400, 1))
    threshold = guard.set_threshold(_cluster(400, 2), percentile=99.5)
    heldout = guard.scores(_cluster(1000, 3))
    assert (heldout > threshold).mean() < 0.03
    far = _cluster(20, 4, centre_seed=7)  # another direction on the sphere
    verdicts = guard.verdicts([f"far{i}" for i in range(20)], far)
    assert all(v.flag and v.score > v.threshold for v in verdicts)
    near = guard.verdicts(["near"], _cluster(1, 5))
    assert near[0].view_id == "near" and not near[0].flag


def test_shrinkage_makes_a_singular_covariance_invertible() -> None:
    x = _cluster(10, 6, dim=64)  # fewer samples than dimensions
    cov, shrink = shrunk_covariance(x)
    assert 0.0 < shrink <= 1.0
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_prompt_familiarity() -> None:
    ref = np.eye(4, 8)
    guard = OODGuard.fit(_cluster(50, 1, dim=8))
    guard.set_text_reference(ref, threshold=0.6)
    close, far = np.array([0.9, 0.1, 0, 0, 0, 0, 0, 0]), np.array([0, 0, 0, 0, 0, 0, 1.0, 0])
    np.testing.assert_allclose(guard.prompt_familiarity(np.stack([close, far])),
                               [0.9 / np.linalg.norm(close), 0.0], atol=1e-6)
    assert not guard.prompt_is_unfamiliar("close", close) and guard.prompt_is_unfamiliar("far", far)
    guard.vocabulary = frozenset({"right", "pleural", "effusion"})
    assert guard.unknown_words("Right pleural efusion, PTX!") == ["efusion", "ptx"]
    assert guard.prompt_is_unfamiliar("pleural efusion", close)  # an unknown word is enough
    assert not guard.prompt_is_unfamiliar("right pleural effusion", close)


def test_save_load_round_trip(tmp_path) -> None:
    guard = OODGuard.fit(_cluster(100, 1), {"model_id": "m1"})
    guard.set_threshold(_cluster(100, 2))
    guard.set_text_reference(np.eye(3, 32), 0.5)
    guard.save(tmp_path)
    loaded = OODGuard.load(tmp_path, "m1")
    probe = _cluster(5, 9)
    np.testing.assert_allclose(loaded.scores(probe), guard.scores(probe), rtol=1e-4)
    assert loaded.threshold == pytest.approx(guard.threshold) and loaded.prompt_threshold == 0.5
    assert OODGuard.load(tmp_path, "another-model") is None
    assert OODGuard.load(tmp_path / "missing") is None
    (tmp_path / "ood.npz").write_bytes(b"not numpy")
    with pytest.raises(OODError, match="re-run `cxrclip calibrate`"):
        OODGuard.load(tmp_path)


def test_mean_feature_map_keeps_the_length_the_unit_embedding_discards() -> None:
    """Same direction, three times the length: the unit-embedding guard cannot tell, the
    mean-feature-map guard (the default) flags it."""
    stats, heldout = 2.0 * _cluster(400, 1), 2.0 * _cluster(400, 2)
    longer = 3.0 * heldout[:20]
    for representation, flagged in (("mean_feature_map", True), ("unit_embedding", False)):
        guard = OODGuard.fit(stats, representation=representation)
        guard.set_threshold(heldout)
        assert guard.representation == representation
        assert all(v.flag == flagged for v in guard.verdicts([f"v{i}" for i in range(20)], longer)), representation
    guard = OODGuard.fit(stats)
    embeddings, mean_maps = np.zeros((1, 32)), np.ones((1, 32))
    assert guard.pick(embeddings, mean_maps) is mean_maps
    guard.representation = "unit_embedding"
    assert guard.pick(embeddings, mean_maps) is embeddings


def test_representation_round_trips_and_version_1_files_read_as_unit_embedding(tmp_path) -> None:
    guard = OODGuard.fit(2.0 * _cluster(100, 1), {"model_id": "m1"})
    guard.set_threshold(2.0 * _cluster(100, 2))
    guard.save(tmp_path)
    info = json.loads((tmp_path / "ood.json").read_text())
    assert info["format_version"] == 2 and info["representation"] == "mean_feature_map"
    assert OODGuard.load(tmp_path).representation == "mean_feature_map"
    # A format-1 file (written before the representation existed) scored the unit embedding.
    old = OODGuard.fit(_cluster(100, 1), representation="unit_embedding")
    old.set_threshold(_cluster(100, 2))
    old.save(tmp_path)
    info = json.loads((tmp_path / "ood.json").read_text())
    info.pop("representation")
    info["format_version"] = 1
    (tmp_path / "ood.json").write_text(json.dumps(info))
    loaded = OODGuard.load(tmp_path)
    assert loaded.representation == "unit_embedding"
    probe = 5.0 * _cluster(3, 9)
    np.testing.assert_allclose(loaded.scores(probe), old.scores(probe / 5.0), rtol=1e-4)
    info["representation"] = "pixels"
    (tmp_path / "ood.json").write_text(json.dumps(info))
    with pytest.raises(OODError, match=r"representation.*mean_feature_map.*unit_embedding.*'pixels'"):
        OODGuard.load(tmp_path)
    with pytest.raises(OODError, match="must be one of"):
        OODGuard.fit(_cluster(10, 1), representation="backbone")
