"""Small phantom datasets shared by the phantom tests (generated once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest

from training.phantoms.dataset import GenerateOptions, generate_dataset


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 studies at 96 px with DICOM, PNG, labels and manifest (seed 5)."""
    out = tmp_path_factory.mktemp("phantoms")
    generate_dataset(GenerateOptions(out=out, seed=5, size=96), studies=12, workers=1)
    return out
