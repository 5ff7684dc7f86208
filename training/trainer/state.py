"""Training checkpoints: model directory (``cxrclip.checkpoint``) + ``trainer_state.pt``.

Layout under ``output_dir``::

    checkpoints/step_00001000/   config.json, model.safetensors, text_encoder/, MODEL_CARD.md,
                                 trainer_state.pt, rng_rank<r>.pt, experiment.json
    checkpoints/latest           name of the newest complete checkpoint
    best/                        model directory of the best validation loss so far

A checkpoint is assembled in a hidden ``.pending-*`` directory and renamed into
place, so a crash never leaves a half-written ``step_*`` behind. Everything in
``trainer_state.pt`` is tensors and plain Python values, loadable with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

TRAINER_STATE = "trainer_state.pt"
LATEST = "latest"
CKPT_DIR = "checkpoints"


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA RNG states as tensors and plain values."""
    version, py_state, gauss = random.getstate()
    _, np_key, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"key": torch.from_numpy(np_key.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``rng_state``."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["key"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary name, then rename."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def pending_dir(output_dir: Path, step: int) -> Path:
    return output_dir / CKPT_DIR / f".pending-step_{step:08d}"


def final_dir(output_dir: Path, step: int) -> Path:
    return output_dir / CKPT_DIR / f"step_{step:08d}"


def write_model_dir(model: torch.nn.Module, tokenizer: Any, directory: Path,
                    card: dict[str, Any] | None) -> None:
    """The model part, via ``cxrclip.checkpoint.save_model`` (float32 weights)."""
    from cxrclip.checkpoint import save_model

    save_model(model, tokenizer, directory, card=card, dtype=None, overwrite=True)


def finalize(output_dir: Path, step: int, trainer_state: dict[str, Any],
             experiment: dict[str, Any], keep_last: int) -> Path:
    """Add trainer state to the pending dir, rename it into place, update ``latest``, prune."""
    pending = pending_dir(output_dir, step)
    atomic_torch_save(trainer_state, pending / TRAINER_STATE)
    (pending / "experiment.json").write_text(json.dumps(experiment, indent=2, default=str))
    final = final_dir(output_dir, step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(pending, final)
    latest = output_dir / CKPT_DIR / LATEST
    tmp = latest.with_name(LATEST + ".tmp")
    tmp.write_text(final.name + "\n")
    os.replace(tmp, latest)
    _prune(output_dir / CKPT_DIR, keep_last)
    return final


def _prune(ckpt_root: Path, keep_last: int) -> None:
    if keep_last <= 0:
        return
    steps = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    for old in steps[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint directory, or None when there is none."""
    pointer = output_dir / CKPT_DIR / LATEST
    if pointer.is_file():
        candidate = output_dir / CKPT_DIR / pointer.read_text().strip()
        if (candidate / TRAINER_STATE).is_file():
            return candidate
    steps = sorted(p for p in (output_dir / CKPT_DIR).glob("step_*")
                   if (p / TRAINER_STATE).is_file())
    return steps[-1] if steps else None


def load_trainer_state(checkpoint: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``trainer_state.pt`` with ``weights_only=True``."""
    return torch.load(checkpoint / TRAINER_STATE, map_location=map_location, weights_only=True)


def load_model_weights(model: torch.nn.Module, checkpoint: Path) -> None:
    """Load ``model.safetensors`` of a checkpoint into an existing model (strict)."""
    from safetensors.torch import load_file

    from cxrclip.checkpoint import WEIGHTS_FILE

    model.load_state_dict(load_file(str(checkpoint / WEIGHTS_FILE)), strict=True)


def init_weights_from(model: torch.nn.Module, model_dir: str | Path) -> None:
    """Start training from another model directory's weights (fine-tuning).

    ``model_dir`` is any cxrclip model directory: a run's checkpoint or ``best/``, the
    demo model, or a converted official checkpoint. Its weights must match the
    configured architecture; a mismatch names the keys or shapes that differ.
    """
    from safetensors.torch import load_file

    from cxrclip.checkpoint import WEIGHTS_FILE, check_state_dict

    weights = Path(model_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"train.init_from={str(model_dir)!r} has no {WEIGHTS_FILE}; give a cxrclip "
                                "model directory (a checkpoint, best/, or a converted official model)")
    state = load_file(str(weights))
    expected = model.state_dict()
    check_state_dict(expected, state, f"train.init_from={str(model_dir)!r}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
