"""Same seed -> byte-identical files; a different seed -> different files."""
from __future__ import annotations

import hashlib
from pathlib import Path

from training.phantoms.cli import main
from training.phantoms.dataset import GenerateOptions, generate_dataset


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_identical_files(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 9), (b, 9), (c, 10)):
        generate_dataset(GenerateOptions(out=out, seed=seed, size=64), studies=3)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert len(da) == 3 * 4 + 4   # 2 DICOM + 2 PNG per study, 4 tables
    pngs = [k for k in da if k.endswith(".png")]
    assert all(da[k] != dc.get(k.replace("phantom-9-", "phantom-10-")) for k in pngs)


def test_cli_generate_and_worker_count_does_not_change_output(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["phantom", "generate", "--studies", "4", "--seed", "3", "--size", "64", "--png"]
    assert main([*args, "--out", str(one), "--workers", "1"]) == 0
    assert main([*args, "--out", str(two), "--workers", "2", "--dicom-size", "64"]) == 0
    assert _digest(one) == _digest(two)


def test_no_dicom_writes_png_and_manifest_only(tmp_path: Path) -> None:
    assert main(["phantom", "generate", "--out", str(tmp_path), "--studies", "2", "--size", "64",
                 "--workers", "1", "--no-dicom", "--split", "test"]) == 0
    assert not (tmp_path / "dicom").exists()
    assert len(list((tmp_path / "png").rglob("*.png"))) == 4
    assert '"split": "test"' in (tmp_path / "studies.jsonl").read_text()
