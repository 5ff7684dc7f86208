"""Where the plugin finds its model and sentence bank.

Model directory: environment variable ``CXRCLIP_MODEL`` > the saved setting
(QSettings key ``cxrclip_findings/model_dir``, passed in by the plugin) > the
bundled demo model ``assets/models/cxrclip-demo``. The sentence bank defaults
to ``assets/sentence_bank`` (env ``CXRCLIP_SENTENCE_BANK`` overrides).
"""
from __future__ import annotations

import os
from pathlib import Path

MODEL_ENV = "CXRCLIP_MODEL"
BANK_ENV = "CXRCLIP_SENTENCE_BANK"
THREADS_ENV = "CXRCLIP_THREADS"
SETTINGS_KEY_MODEL = "cxrclip_findings/model_dir"
DEMO_MODEL = Path("models") / "cxrclip-demo"
SENTENCE_BANK = Path("sentence_bank")


def assets_dir() -> Path:
    """The project's ``assets/`` folder: the first existing root of cxrclip.resources."""
    fallback = Path(__file__).resolve().parents[2] / "assets"
    try:
        from cxrclip.resources import asset_roots
    except ImportError:
        return fallback
    return next((root for root in asset_roots() if root.is_dir()), fallback)


def resolve_model_dir(saved: str | None = None) -> tuple[Path, str]:
    """The model directory to load and where that choice came from ("env", "settings", "default")."""
    env = os.environ.get(MODEL_ENV, "").strip()
    if env:
        return Path(env).expanduser(), "env"
    if saved and str(saved).strip():
        return Path(str(saved)).expanduser(), "settings"
    return assets_dir() / DEMO_MODEL, "default"


def resolve_bank_dir() -> Path:
    """The sentence bank directory (env override, else ``assets/sentence_bank``)."""
    env = os.environ.get(BANK_ENV, "").strip()
    return Path(env).expanduser() if env else assets_dir() / SENTENCE_BANK


def resolve_threads() -> int | None:
    """Torch CPU threads from ``CXRCLIP_THREADS`` (None: leave torch's default).

    On a busy or shared CPU, 1 thread can be several times faster than the default,
    whose worker threads spin-wait for cores other programs hold.
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {value!r}")
    return int(value)
