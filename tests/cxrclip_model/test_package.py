"""``import cxrclip`` stays light; public names resolve lazily."""
import subprocess
import sys

import pytest

import cxrclip


def test_import_does_not_pull_torch_or_transformers():
    code = "import sys, cxrclip; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_lazy_names_resolve_to_their_modules():
    from cxrclip.checkpoint import load_model
    from cxrclip.model import CXRClip

    assert cxrclip.CXRClip is CXRClip and cxrclip.load_model is load_model
    assert "ModelConfig" in dir(cxrclip) and "Engine" in cxrclip.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        cxrclip.Nope  # noqa: B018
