"""The three bundled sample studies in ``assets/sample_studies`` (fixed seeds, forced findings).

Regenerate with ``cxrclip phantom samples --out assets/sample_studies`` (or
``python -m training.phantoms phantom samples``).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from pydicom.uid import RLELossless

from training.phantoms.dicom_io import StudyTags, build_dataset, study_tags, to_stored, write_dicom
from training.phantoms.findings import Finding
from training.phantoms.priors import Change, StudySpec, prior_of, prior_tags, was
from training.phantoms.study import GENERATOR_VERSION, PhantomStudy, generate_study

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


# The prior of sample 02 (same patient, 97 days earlier): a mild right effusion then has
# grown (bilateral, moderate now); a left pneumothorax then has resolved. (With a right
# pneumothorax the demo model misses the enlarged heart on the prior: a shortcut it learnt.)
PRIOR_NAME = "04_prior_of_02_pneumothorax_effusion"
PRIOR_CHANGE = Change(days=97, before=(
    was("Pleural Effusion", Finding("Pleural Effusion", side="right", zone="lower",
                                    ap="posterior", location="base", severity="mild")),
    was("Pneumothorax", Finding("Pneumothorax", side="left", zone="upper", ap="anterior",
                                location="apical", severity="moderate")),
))
PRIOR_OF = "02_cardiomegaly_bilateral_effusions"


def generate_sample_studies(out: Path, size: int = 1024) -> list[Path]:
    """Write the sample studies (12-bit RLE Lossless DICOM, to stay small) and README under
    ``out``: the three of `SAMPLES` and the prior of sample 02 (frontal only, to keep the
    folder small)."""
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    reports: list[tuple[str, int, PhantomStudy]] = []
    for name, seed, findings in SAMPLES:
        study = generate_study(seed, 0, size, findings=findings)
        tags = _sample_tags(seed, study)
        paths += _write_views(out / name, name, study, tags, ("frontal", "lateral"))
        reports.append((name, seed, study))
        if name == PRIOR_OF:
            prior = prior_of(StudySpec(seed, 0, tuple(findings)), PRIOR_CHANGE)
            prior_study = prior.generate(size)
            paths += _write_views(out / PRIOR_NAME, PRIOR_NAME, prior_study,
                                  prior_tags(tags, prior), ("frontal",))
            reports.append((PRIOR_NAME, seed, prior_study))
    (out / "README.md").write_text(_readme(sorted(reports, key=lambda r: r[0]), size),
                                   encoding="utf-8")
    return paths


def write_pair(out: Path, seed: int, index: int = 0, change: Change = PRIOR_CHANGE,
               size: int = 1024) -> list[Path]:
    """Write a current study of ``(seed, index)`` (findings sampled from the seed) and its
    prior per ``change`` (two views each) under ``out/current`` and ``out/prior``."""
    current = StudySpec(seed, index)
    prior = prior_of(current, change)
    study = current.generate(size)
    tags = study_tags(seed, index, study.anatomy.sex, study.anatomy.age,
                      np.random.default_rng([seed, index, 50]))
    views = ("frontal", "lateral")
    return (_write_views(out / "current", "CURRENT", study, tags, views)
            + _write_views(out / "prior", "PRIOR", prior.generate(size), prior_tags(tags, prior),
                           views))


def _sample_tags(seed: int, study: PhantomStudy) -> StudyTags:
    rng = np.random.default_rng([seed, 0, 50])
    return replace(study_tags(seed, 0, study.anatomy.sex, study.anatomy.age, rng), bits_stored=12)


def _write_views(folder: Path, name: str, study: PhantomStudy, tags: StudyTags,
                 views: tuple[str, ...]) -> list[Path]:
    paths = []
    for n, (view, pos) in enumerate((("frontal", study.frontal_position), ("lateral", "LL")), 1):
        if view not in views:
            continue
        stored, wc, ww = to_stored(study.images[view], tags)
        ds = build_dataset(stored, tags, pos, n, study.seed, study.index, (wc, ww), study.visit)
        ds.StudyDescription = f"CHEST {len(views)} VIEW{'S' if len(views) > 1 else ''} - SAMPLE {name}"
        ds.ImageComments = (f"{study.report.findings} IMPRESSION: {study.report.impression}"
                            [:10240])
        ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
        path = folder / f"{n}_{'LATERAL' if pos == 'LL' else pos}.dcm"
        write_dicom(path, ds)
        paths.append(path)
    return paths


def _readme(reports: list[tuple[str, int, PhantomStudy]], size: int) -> str:
    lines = [
        "# Sample studies (synthetic phantoms)",
        "",
        "Three procedurally generated two-view chest studies (frontal + lateral DICOM) and a",
        "one-view (frontal) prior study of the patient of `02` for demos and tests. They are",
        "drawings, not radiographs, and say nothing about real patients or real image",
        "statistics.",
        "",
        f"Made by `training.phantoms.samples.generate_sample_studies()` with generator version "
        f"{GENERATOR_VERSION}, {size} x {size} pixels, 12 bits stored, RLE Lossless:",
        "",
        "    cxrclip phantom samples --out assets/sample_studies",
        "    # or: python -m training.phantoms phantom samples --out assets/sample_studies",
        "",
        "Each study uses study index 0 of its seed with forced findings (see `SAMPLES` in",
        "`training/phantoms/samples.py`); regenerating gives byte-identical files.",
        "",
        f"`{PRIOR_NAME}` is `training.phantoms.priors.prior_of` sample `02` with "
        f"`PRIOR_CHANGE`: the same patient (Patient ID, name, anatomy), {PRIOR_CHANGE.days} days "
        "earlier, new Study/Series/SOP UIDs; the right effusion was mild then (it grew, now "
        "moderate and bilateral) and a left pneumothorax then has resolved. The viewer finds "
        "it as the prior of `02` (Compare with prior).",
        "",
        "| folder | seed | findings |",
        "|---|---|---|",
    ]
    for name, seed, study in reports:
        names = ", ".join(f"{f.severity} {f.side + ' ' if f.side else ''}{f.name}".lower()
                          for f in study.findings) or "none"
        lines.append(f"| `{name}` | {seed} | {names} |")
    lines.append("")
    lines.append("## Reports")
    for name, _, study in reports:
        lines += ["", f"### {name}", "", f"FINDINGS: {study.report.findings}", "",
                  f"IMPRESSION: {study.report.impression}"]
    return "\n".join(lines) + "\n"



# (caption, seed, findings) of the documentation contact sheet.
SHEET: tuple[tuple[str, int, list[Finding]], ...] = (
    ("normal", 201, []),
    ("cardiomegaly", 202, [Finding("Cardiomegaly", severity="severe")]),
    ("bilateral effusions", 203, [Finding("Pleural Effusion", side="bilateral", zone="lower",
                                          ap="posterior", severity="moderate")]),
    ("right pneumothorax", 204, [Finding("Pneumothorax", side="right", zone="upper",
                                         ap="anterior", severity="moderate")]),
    ("RLL pneumonia", 205, [Finding("Pneumonia", side="right", zone="lower", ap="posterior",
                                    location="right lower lobe", severity="moderate",
                                    params={"bronchograms": True})]),
    ("edema", 206, [Finding("Edema", side="bilateral", zone="mid", severity="severe")]),
    ("LUL mass", 207, [Finding("Lung Lesion", side="left", zone="upper", ap="middle",
                               location="left upper lobe", kind="mass", params={"size_cm": 5.0})]),
    ("devices", 208, [Finding("Support Devices", kind="endotracheal tube,enteric tube,"
                                                      "central venous catheter,pacemaker")]),
)


def contact_sheet(path: Path, tile: int = 160) -> Path:
    """Write a PNG grid (frontal + lateral per finding, captioned) for the documentation."""
    import cv2

    tiles = []
    for caption, seed, findings in SHEET:
        study = generate_study(seed, 0, tile * 2, findings=findings)
        pair = np.hstack([cv2.resize(study.images[v], (tile, tile), interpolation=cv2.INTER_AREA)
                          for v in ("frontal", "lateral")])
        img = np.round(pair * 255).astype(np.uint8)
        (w, h), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(img, (0, 0), (w + 8, h + 10), 0, -1)
        cv2.putText(img, caption, (4, h + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
        tiles.append(img)
    rows = [np.hstack(tiles[i:i + 2]) for i in range(0, len(tiles), 2)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path
