"""First launch with the model folder's prompt embeddings: the plugin encodes no class prompt."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrclip.manifest import write_manifest
from cxrclip.prompt_cache import PROMPT_EMBEDDINGS_FILE, write_prompt_embeddings, zero_shot_prompts
from plugins.cxrclip_findings.service import FindingsService


@pytest.fixture()
def empty_user_cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty prompt-embedding cache: the first launch on this machine."""
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("CXRCLIP_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def shipped_model(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model folder with its zero-shot prompt embeddings, as `cxrclip calibrate` leaves it."""
    folder = tmp_path_factory.mktemp("shipped") / "model"
    shutil.copytree(tiny_model_dir, folder)
    from cxrclip.engine import Engine

    write_prompt_embeddings(Engine.load(folder, device="cpu", runtime="torch"), folder)
    write_manifest(folder)
    return folder


def _count_tower_calls(service: FindingsService) -> list[int]:
    """Wrap the text tower so each call records its batch size."""
    towers, calls = service.engine.towers, []
    original = towers.encode_text

    def counting(input_ids, attention_mask):
        calls.append(len(input_ids))
        return original(input_ids, attention_mask)

    towers.encode_text = counting
    return calls


def test_first_launch_encodes_no_class_prompt(shipped_model, empty_user_cache, helpers, tmp_path):
    service = FindingsService.load(shipped_model, device="cpu")
    calls = _count_tower_calls(service)
    service.warm_up()
    prepared = service.prepare("s", helpers.study_handle(helpers.make_study(tmp_path / "s")).views)
    seeded = service.zero_shot(prepared)
    assert calls == [] and len(seeded) == 14
    assert not any(empty_user_cache.rglob("*.npz"))  # the folder keeps them; nothing copied

    fresh_service = _service_without_shipped_file(shipped_model, tmp_path)
    fresh = {f.finding: f for f in fresh_service.zero_shot(prepared)}
    assert max(abs(f.probability - fresh[f.finding].probability) for f in seeded) <= 1e-5
    assert max(abs(f.similarity - fresh[f.finding].similarity) for f in seeded) <= 1e-5


def _service_without_shipped_file(model: Path, tmp_path: Path) -> FindingsService:
    """The same model with the prompts encoded afresh (folder copy without the file)."""
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    (bare / PROMPT_EMBEDDINGS_FILE).unlink()
    write_manifest(bare)
    service = FindingsService.load(bare, device="cpu")
    calls = _count_tower_calls(service)
    service.warm_up()
    assert sum(calls) == len(zero_shot_prompts())  # really encoded here
    return service


def test_stale_file_is_not_used(shipped_model, empty_user_cache, tmp_path):
    stale = tmp_path / "stale"
    shutil.copytree(shipped_model, stale)
    _set_fingerprint(stale / PROMPT_EMBEDDINGS_FILE, "0" * 64)
    write_manifest(stale)
    service = FindingsService.load(stale, device="cpu")
    calls = _count_tower_calls(service)
    service.warm_up()
    assert sum(calls) == len(zero_shot_prompts())
    written = list(empty_user_cache.rglob("*.npz"))
    assert len(written) == 1  # encoded prompts kept in the user cache as before


def _set_fingerprint(path: Path, fingerprint: str) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "fingerprint": fingerprint}))
    np.savez(path, **arrays)
