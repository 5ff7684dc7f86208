"""The bundled sample studies: three 2-view studies, small, matching the generator."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
import pytest

from training.phantoms.samples import SAMPLES, generate_sample_studies

EXPECTED = {
    "01_normal": ("normal",),
    "02_cardiomegaly_bilateral_effusions": ("cardiomegaly", "bilateral pleural effusions"),
    "03_right_pneumothorax": ("right pneumothorax",),
}


def _samples_dir(repo_root: Path) -> Path:
    return repo_root / "assets" / "sample_studies"


def test_three_two_view_studies_under_8_mb(repo_root: Path) -> None:
    root = _samples_dir(repo_root)
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 8 * 2**20
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(EXPECTED)
    for name, words in EXPECTED.items():
        files = sorted((root / name).glob("*.dcm"))
        positions = {pydicom.dcmread(f, stop_before_pixels=True).ViewPosition for f in files}
        assert len(files) == 2 and "LL" in positions
        readme = (root / "README.md").read_text()
        report = readme[readme.index(f"### {name}"):].split("###")[1].lower()
        for w in words:
            assert w in report
        ds = pydicom.dcmread(files[0])
        assert max(ds.Rows, ds.Columns) == 1024 and ds.pixel_array.shape == (1024, 1024)


@pytest.mark.slow
def test_samples_regenerate_byte_identical(repo_root: Path, tmp_path: Path) -> None:
    generate_sample_studies(tmp_path)
    root = _samples_dir(repo_root)
    for name, _, _ in SAMPLES:
        for f in [*sorted((tmp_path / name).iterdir()), tmp_path / "README.md"]:
            bundled = root / f.relative_to(tmp_path)
            assert hashlib.sha256(f.read_bytes()).digest() == \
                hashlib.sha256(bundled.read_bytes()).digest(), f"{bundled} is out of date; " \
                "run `cxrclip phantom samples --out assets/sample_studies`"


def test_viewer_opens_samples_without_problems(repo_root: Path) -> None:
    scan = pytest.importorskip("viewer.io.scan")
    decode = pytest.importorskip("viewer.io.decode")
    result = scan.scan_folder(_samples_dir(repo_root))
    assert result.problems == []  # README.md is skipped as a document, not listed
    assert [p.name for p in result.skipped] == ["README.md"]
    studies = result.studies.studies()
    assert len(studies) == 3
    for study in studies:
        views = study.views()
        assert len(views) == 2 and views[0].is_frontal and not views[1].is_frontal
        for view in views:
            img = decode.load_image(view)
            assert img.shape == (1024, 1024)
            assert view.window_presets and view.pixel_spacing
