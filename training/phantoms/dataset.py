"""Write a folder of phantom studies: DICOM, PNG cache, labels, ground truth, manifest.

Layout of ``generate_dataset(out, ...)``::

    out/dicom/<patient>/<study>/<series>/<sop>.dcm
    out/png/<study>/<PA|AP|LATERAL>.png      (8-bit, display-ready, when png=True)
    out/labels.csv                           (study_id + CheXpert-14, 1.0/0.0/-1.0/blank)
    out/ground_truth.jsonl                   (findings with side/location/severity and their
                                              boxes per view, anatomy)
    out/manifest.json + out/studies.jsonl    (training manifest, images from png/)
"""
from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.phantoms.dicom_io import build_dataset, study_tags, to_stored, write_dicom
from training.phantoms.findings import Finding, chexpert_14
from training.phantoms.regions import pixel_boxes
from training.phantoms.study import GENERATOR_VERSION, PhantomStudy, generate_study, intact_twin

SPLIT_CHOICES = ("hash", "train", "validate", "test")


@dataclass(frozen=True)
class GenerateOptions:
    """What to write for each study."""

    out: Path
    seed: int = 0
    size: int = 512            # PNG (training cache) size
    dicom_size: int | None = None   # DICOM size; None = same as ``size``
    png: bool = True
    dicom: bool = True
    split: str = "hash"
    fracture_twins: bool = False   # also write each fractured study's intact twin (PNG training sets)


def split_of(study_id: str, mode: str = "hash") -> str:
    """Stable split from a hash of the id (90/5/5), or one fixed split."""
    if mode not in SPLIT_CHOICES:
        raise ValueError(f"split mode {mode!r} is not one of {SPLIT_CHOICES}")
    if mode != "hash":
        return mode
    bucket = int(hashlib.sha1(study_id.encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < 90 else ("validate" if bucket < 95 else "test")


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size:
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def write_study(study: PhantomStudy, opts: GenerateOptions) -> dict[str, Any]:
    """Write one generated study's files; return its manifest/label/ground-truth rows."""
    rng = np.random.default_rng([study.seed, study.index, 50])
    tags = study_tags(study.seed, study.index, study.anatomy.sex, study.anatomy.age, rng)
    positions = {"frontal": study.frontal_position, "lateral": "LL"}
    names = {"frontal": study.frontal_position, "lateral": "LATERAL"}
    images, files = [], []
    for n, view in enumerate(("frontal", "lateral"), start=1):
        disp = study.images[view]
        if opts.dicom:
            stored, wc, ww = to_stored(_resize(disp, opts.dicom_size or opts.size), tags)
            ds = build_dataset(stored, tags, positions[view], n, study.seed, study.index, (wc, ww))
            rel = Path("dicom", tags.patient_id, study.study_id, f"series-{n}",
                       f"{ds.SOPInstanceUID}.dcm")
            write_dicom(opts.out / rel, ds)
            files.append(str(rel))
        if opts.png:
            rel_png = f"{study.study_id}/{names[view]}.png"
            path = opts.out / "png" / rel_png
            path.parent.mkdir(parents=True, exist_ok=True)
            png = np.round(_resize(disp, opts.size) * 255).astype(np.uint8)
            cv2.imwrite(str(path), png, [cv2.IMWRITE_PNG_COMPRESSION, 6])
            images.append(rel_png)
    record = {"study_id": study.study_id, "images": images,
              "view_positions": [names["frontal"], "LATERAL"],
              "findings": study.report.findings, "impression": study.report.impression,
              "labels": study.report.labels, "split": split_of(study.twin_of or study.study_id, opts.split),
              "dataset": "phantom"}
    truth = {"study_id": study.study_id, "seed": study.seed, "index": study.index,
             **({"twin_of": study.twin_of} if study.twin_of else {}),
             "patient_id": tags.patient_id, "study_uid": tags.study_uid,
             "generator_version": GENERATOR_VERSION, "dicom_files": files,
             "findings": finding_rows(study, names, opts.size), "labels": study.report.labels,
             "region_image_size": opts.size,
             "anatomy": asdict(study.anatomy)}
    return {"record": record, "truth": truth}


def finding_rows(study: PhantomStudy, names: dict[str, str], size: int) -> list[dict[str, Any]]:
    """Ground-truth rows of a study's findings, each with ``regions``: written view name
    (PA/AP/LATERAL) -> ``[x0, y0, x1, y1]`` pixel boxes in the ``size`` PNG."""
    rows = []
    for f in study.findings:
        per_view = study.regions.get(f.name, {})
        regions = {names[view]: pixel_boxes(boxes, size) for view, boxes in per_view.items()}
        rows.append({**f.to_dict(), "regions": regions})
    return rows


def _work(args: tuple[GenerateOptions, int, list[Finding] | None]) -> list[dict[str, Any]]:
    """One study's rows: the study, then its intact twin when asked for and it has a fracture."""
    opts, index, findings = args
    render = max(opts.size, opts.dicom_size or 0) if opts.dicom else opts.size
    study = generate_study(opts.seed, index, render, findings=findings)
    twin = intact_twin(study, render) if opts.fracture_twins else None
    return [write_study(s, opts) for s in (study, twin) if s is not None]


def _write_tables(out: Path, rows: list[dict[str, Any]], opts: GenerateOptions) -> None:
    names = chexpert_14()
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["study_id", *names])
        for r in rows:
            labels = r["record"]["labels"]
            writer.writerow([r["record"]["study_id"],
                             *[f"{labels[n]:.1f}" if n in labels else "" for n in names]])
    with (out / "ground_truth.jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r["truth"], sort_keys=True) + "\n")
    if opts.png:
        from training.data.manifest import ManifestHeader, StudyRecord, write_manifest
        header = ManifestHeader(dataset="phantom", image_size=opts.size, image_root="png",
                                source=f"cxrclip phantom generate --seed {opts.seed}",
                                notes=f"synthetic phantoms, generator {GENERATOR_VERSION}")
        write_manifest(out, header, [StudyRecord.from_dict(r["record"]) for r in rows])


def generate_dataset(opts: GenerateOptions, studies: int, workers: int = 1,
                     forced: dict[int, list[Finding]] | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Generate ``studies`` studies into ``opts.out``; returns the per-study rows in order
    (with ``opts.fracture_twins`` an intact twin's row follows its study's, in the same split).

    With ``workers > 1`` studies are rendered in spawned processes (safe next to torch);
    scripts that call this must do so under ``if __name__ == "__main__":``. The output is
    identical for any number of workers.
    """
    if studies < 1:
        raise ValueError(f"--studies must be at least 1, got {studies}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if opts.fracture_twins and opts.dicom:
        raise ValueError("--fracture-twins writes training PNGs only (a twin would repeat its "
                         "study's DICOM identifiers): add --no-dicom")
    opts.out.mkdir(parents=True, exist_ok=True)
    jobs = [(opts, i, (forced or {}).get(i)) for i in range(studies)]
    rows: list[dict[str, Any]] = []
    if workers == 1:
        for done, study_rows in enumerate(map(_work, jobs), start=1):
            rows.extend(study_rows)
            if progress:
                progress(done, studies)
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            chunks = max(1, min(16, studies // (4 * workers)))
            for done, study_rows in enumerate(pool.imap(_work, jobs, chunksize=chunks), start=1):
                rows.extend(study_rows)
                if progress:
                    progress(done, studies)
    _write_tables(opts.out, rows, opts)
    return rows
