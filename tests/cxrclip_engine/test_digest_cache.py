"""`cxrclip.manifest.DigestCache`: a model folder is hashed once, and any change is hashed again."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from cxrclip import manifest
from cxrclip.manifest import DigestCache, check_manifest, use_digest_cache, write_manifest


@pytest.fixture(autouse=True)
def _no_cache_from_other_tests():
    """The viewer's service turns the process-wide cache on; each test here starts without it."""
    use_digest_cache(None)
    yield
    use_digest_cache(None)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    (model / "onnx").mkdir(parents=True)
    (model / "config.json").write_text('{"name": "tiny"}')
    (model / "onnx" / "text.onnx").write_bytes(b"\x01" * 5000)
    write_manifest(model)
    return model


@pytest.fixture
def counted_reads(monkeypatch) -> list[str]:
    """Names of the files `sha256_file` reads."""
    reads: list[str] = []
    real = manifest.sha256_file

    def counting(path: Path) -> str:
        reads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(manifest, "sha256_file", counting)
    return reads


@pytest.fixture
def cache_file(tmp_path: Path):
    path = tmp_path / "cache" / "verified_digests.json"
    use_digest_cache(path)
    return path


def test_without_a_cache_every_check_reads_every_file(folder, counted_reads) -> None:
    assert check_manifest(folder) is None and check_manifest(folder) is None
    assert sorted(counted_reads) == ["config.json", "config.json", "text.onnx", "text.onnx"]


def test_unchanged_files_are_read_once_even_by_a_new_process(folder, counted_reads, cache_file) -> None:
    assert check_manifest(folder) is None
    assert sorted(counted_reads) == ["config.json", "text.onnx"]
    entries = json.loads(cache_file.read_text())
    text = str((folder / "onnx" / "text.onnx").resolve())
    assert entries[text][-1] == hashlib.sha256(b"\x01" * 5000).hexdigest()
    use_digest_cache(cache_file)  # what the next launch does: a fresh cache object, the same file
    assert check_manifest(folder) is None
    assert len(counted_reads) == 2


def test_a_file_changed_after_its_digest_was_kept_is_read_again_and_refused(folder, counted_reads,
                                                                           cache_file) -> None:
    target = folder / "onnx" / "text.onnx"
    assert check_manifest(folder) is None
    before = target.stat()
    target.write_bytes(b"\x02" * 5000)  # same size; put the old modification time back
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    problem = check_manifest(folder)
    assert problem is not None and (problem.path, problem.reason) == ("onnx/text.onnx", "changed")
    assert counted_reads.count("text.onnx") == 2


def test_a_damaged_cache_file_counts_as_empty(folder, counted_reads, tmp_path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    cache = DigestCache(path)
    assert cache.digest(folder / "config.json") == hashlib.sha256(b'{"name": "tiny"}').hexdigest()
    cache.save()
    assert str((folder / "config.json").resolve()) in json.loads(path.read_text())


def test_an_unwritable_cache_folder_is_not_an_error(folder, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    use_digest_cache(blocker / "sub" / "verified_digests.json")  # its parent cannot be created
    assert check_manifest(folder) is None
