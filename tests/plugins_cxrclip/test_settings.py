"""Model / bank / thread settings resolution."""
from __future__ import annotations

from pathlib import Path

import pytest

from plugins.cxrclip_findings import settings


def test_model_dir_env_beats_saved_beats_default(monkeypatch, tmp_path):
    monkeypatch.delenv("CXRCLIP_MODEL", raising=False)
    path, source = settings.resolve_model_dir(None)
    assert source == "default" and path.parts[-2:] == ("models", "cxrclip-demo")
    assert settings.resolve_model_dir(str(tmp_path)) == (tmp_path, "settings")
    monkeypatch.setenv("CXRCLIP_MODEL", str(tmp_path / "env"))
    assert settings.resolve_model_dir(str(tmp_path)) == (tmp_path / "env", "env")


def test_bank_dir_and_threads(monkeypatch, tmp_path):
    monkeypatch.delenv("CXRCLIP_SENTENCE_BANK", raising=False)
    assert settings.resolve_bank_dir().name == "sentence_bank"
    monkeypatch.setenv("CXRCLIP_SENTENCE_BANK", str(tmp_path))
    assert settings.resolve_bank_dir() == Path(tmp_path)
    monkeypatch.delenv("CXRCLIP_THREADS", raising=False)
    assert settings.resolve_threads() is None
    monkeypatch.setenv("CXRCLIP_THREADS", "1")
    assert settings.resolve_threads() == 1
    monkeypatch.setenv("CXRCLIP_THREADS", "zero")
    with pytest.raises(ValueError, match="CXRCLIP_THREADS"):
        settings.resolve_threads()
