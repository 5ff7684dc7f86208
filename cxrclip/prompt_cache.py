"""Zero-shot prompt embeddings shipped inside a model folder (``prompt_embeddings.npz``).

Zero-shot scores use prompt ensembles: hundreds of class prompts and their
negatives. Encoding them is most of a viewer's first launch on a CPU (seconds
with MiniLM, tens of seconds with BERT-base), so ``cxrclip export-onnx`` and
``cxrclip calibrate`` store them in the model folder, listed in its
``MANIFEST.sha256``, and the viewer's plugin seeds its prompt cache from them.

The file holds the prompts, their L2-normalised float32 embeddings and the
*fingerprint* of the text tower that computed them (`text_fingerprint`: the
runtime, its dtype and the SHA-256 of the files that define the text tower
under that runtime). A reader passes the fingerprint of the engine it runs;
a file written for another tower (another runtime, re-exported graph, changed
weights) is ignored with a log line and never used.

numpy only: no torch, so the ONNX Runtime path can read it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PROMPT_EMBEDDINGS_FILE = "prompt_embeddings.npz"
FORMAT = 1
# Files that define the text tower under each runtime (relative to the model folder;
# a folder name stands for every file under it).
TEXT_TOWER_FILES = {"onnx": ("onnx/text.onnx", "onnx/tokenizer.json", "onnx/export.json"),
                    "torch": ("config.json", "model.safetensors", "text_encoder")}


def zero_shot_prompts(findings: Sequence[str] | None = None) -> list[str]:
    """Every class prompt and negative that zero-shot scoring of ``findings`` (default
    CheXpert-14, No Finding as complement) encodes, shortest first (batches pad less)."""
    from cxrclip import zero_shot

    ensembles = zero_shot.finding_ensembles(zero_shot.scored_findings(findings, "complement"))
    return sorted(dict.fromkeys(p for e in ensembles for p in e.positives + e.negatives), key=len)


def _manifest_digests(model_dir: Path) -> dict[str, str]:
    """relative path -> SHA-256 from ``MANIFEST.sha256`` (empty when there is none)."""
    from cxrclip.manifest import MANIFEST_FILE

    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        return {}
    digests = {}
    for line in path.read_text(encoding="utf-8").splitlines():  # "<64 hex> <space|*><path>"
        if len(line) > 66 and line[64] == " ":
            digests[line[66:]] = line[:64]
    return digests


def _tower_files(model_dir: Path, runtime: str) -> list[Path]:
    if runtime not in TEXT_TOWER_FILES:
        raise ValueError(f"runtime must be one of {sorted(TEXT_TOWER_FILES)}, got {runtime!r}")
    files: list[Path] = []
    for name in TEXT_TOWER_FILES[runtime]:
        path = model_dir / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def text_fingerprint(model_dir: str | Path, runtime: str, dtype: Any = "float32") -> str:
    """SHA-256 naming the text tower of ``model_dir`` under ``runtime`` ("onnx" or "torch").

    Built from the runtime, the dtype and the digests of the tower's files: taken from
    the folder's manifest (which the engine checked at load) when it lists them, else
    hashed. A missing file counts as "missing", so adding it later changes the result.
    """
    from cxrclip.manifest import sha256_file

    model_dir = Path(model_dir)
    listed = _manifest_digests(model_dir)
    parts = {"runtime": runtime, "dtype": str(dtype).removeprefix("torch."), "files": {}}
    for path in _tower_files(model_dir, runtime):
        relative = path.relative_to(model_dir).as_posix()
        parts["files"][relative] = listed.get(relative) or (sha256_file(path) if path.is_file() else "missing")
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


def engine_fingerprint(engine: Any, model_dir: str | Path) -> str:
    """`text_fingerprint` of the tower ``engine`` (a `cxrclip.Engine` loaded from ``model_dir``) runs."""
    return text_fingerprint(model_dir, str(engine.runtime), engine.dtype)


def write_prompt_embeddings(engine: Any, model_dir: str | Path,
                            prompts: Sequence[str] | None = None) -> Path:
    """Encode ``prompts`` (default `zero_shot_prompts`) with ``engine`` and write them, with
    the engine's text-tower fingerprint, to ``model_dir/prompt_embeddings.npz`` (atomically).

    The caller rewrites ``MANIFEST.sha256`` afterwards (`cxrclip.manifest.write_manifest`).
    ``engine.encode_text`` is used, so prompts already in the engine's cache cost nothing.
    """
    model_dir = Path(model_dir)
    texts = list(dict.fromkeys(zero_shot_prompts() if prompts is None else prompts))
    embeddings = np.asarray(engine.encode_text(texts), dtype=np.float32)
    meta = {"format": FORMAT, "model_id": str(engine.model_id), "runtime": str(engine.runtime),
            "fingerprint": engine_fingerprint(engine, model_dir)}
    fd, tmp = tempfile.mkstemp(prefix=".prompts-", suffix=".npz", dir=model_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, prompts=np.array(texts, dtype=np.str_), embeddings=embeddings,
                     meta=np.array(json.dumps(meta, sort_keys=True)))
        os.chmod(tmp, 0o644)
        target = model_dir / PROMPT_EMBEDDINGS_FILE
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_prompt_embeddings(model_dir: str | Path, fingerprint: str) -> dict[str, np.ndarray]:
    """prompt -> float32 embedding from ``model_dir/prompt_embeddings.npz``; empty when the
    file is absent, unreadable, or was written for another text tower (``fingerprint``
    differs: logged, never used)."""
    path = Path(model_dir) / PROMPT_EMBEDDINGS_FILE
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            prompts, embeddings = npz["prompts"], npz["embeddings"].astype(np.float32)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        log.warning("%s is unreadable (%s: %s), ignored; rewrite it with `cxrclip export-onnx %s`",
                    path, type(exc).__name__, exc, Path(model_dir))
        return {}
    if meta.get("format") != FORMAT or meta.get("fingerprint") != fingerprint:
        log.info("%s was computed by another text tower (%s runtime, fingerprint %.12s, this one %.12s), "
                 "ignored", path, meta.get("runtime"), meta.get("fingerprint"), fingerprint)
        return {}
    if len(prompts) != len(embeddings) or embeddings.ndim != 2:
        log.warning("%s holds %d prompts and embeddings of shape %s, ignored", path, len(prompts),
                    embeddings.shape)
        return {}
    return dict(zip((str(p) for p in prompts), embeddings))


def ship_with_onnx_exports(model_dir: str | Path) -> Path:
    """Write the zero-shot prompt embeddings of a folder's (new) ONNX text tower into it and
    rewrite its MANIFEST.sha256: the viewer's first launch then encodes no prompt. Called after
    every ONNX export (`cxrclip export-onnx`, `convert-official`, `train`, the demo build)."""
    from cxrclip.engine import Engine
    from cxrclip.manifest import write_manifest

    path = write_prompt_embeddings(Engine.load(model_dir, device="cpu", runtime="onnx"), model_dir)
    write_manifest(Path(model_dir))
    return path
