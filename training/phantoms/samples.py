"""The three bundled sample studies in ``assets/sample_studies`` (fixed seeds, forced findings).

Regenerate with ``cxrclip phantom samples --out assets/sample_studies`` (or
``python -m training.phantoms phantom samples``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from pydicom.uid import RLELossless

from training.phantoms.dataset import GenerateOptions
from training.phantoms.dicom_io import build_dataset, study_tags, to_stored, write_dicom
from training.phantoms.findings import Finding
from training.phantoms.study import GENERATOR_VERSION, generate_study

# (folder name, seed, findings) of each sample study; index is always 0.
SAMPLES: tuple[tuple[str, int, list[Finding]], ...] = (
    ("01_normal", 101, []),
    ("02_cardiomegaly_bilateral_effusions", 102,
     [Finding("Cardiomegaly", severity="moderate"),
      Finding("Pleural Effusion", side="bilateral", zone="lower", ap="posterior",
              location="base", severity="moderate")]),
    ("03_right_pneumothorax", 103,
     [Finding("Pneumothorax", side="right", zone="upper", ap="anterior", location="apical",
              severity="severe")]),
)


def generate_sample_studies(out: Path, size: int = 1024) -> list[Path]:
    """Write the sample studies' DICOM files (12-bit, RLE Lossless, to stay small) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, seed, findings in SAMPLES:
        study = generate_study(seed, 0, size, findings=findings)
        rng = np.random.default_rng([seed, 0, 50])
        tags = replace(study_tags(seed, 0, study.anatomy.sex, study.anatomy.age, rng),
                       bits_stored=12)
        for n, (view, pos) in enumerate((("frontal", study.frontal_position), ("lateral", "LL")), 1):
            stored, wc, ww = to_stored(study.images[view], tags)
            ds = build_dataset(stored, tags, pos, n, seed, 0, (wc, ww))
            ds.StudyDescription = f"CHEST 2 VIEWS - SAMPLE {name}"
            ds.ImageComments = (f"{study.report.findings} IMPRESSION: {study.report.impression}"
                                [:10240])
            ds.compress(RLELossless, encoding_plugin="pydicom")
            path = out / name / f"{n}_{'LATERAL' if pos == 'LL' else pos}.dcm"
            write_dicom(path, ds)
            paths.append(path)
        (out / name / "report.txt").write_text(
            f"FINDINGS: {study.report.findings}\n\nIMPRESSION: {study.report.impression}\n",
            encoding="utf-8")
    return paths


__all__ = ["GENERATOR_VERSION", "SAMPLES", "GenerateOptions", "generate_sample_studies"]
