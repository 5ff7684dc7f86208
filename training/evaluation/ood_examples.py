"""The OOD guard on images a phantom-trained model has never seen: real, non-chest, blank.

Each image is rendered to 8-bit display pixels the way `cxrclip score` and the viewer
read it (`cxrclip.image_io`: Modality LUT, VOI LUT/window, MONOCHROME1 inverted) and
judged by `Engine.out_of_distribution`. For a model trained on phantoms all of them
must be flagged. The real radiographs come from the PyPI package ``pydicom-data``
(found through pydicom's own data manager, never downloaded); without it those rows are
skipped with the reason.

One real chest radiograph is a thin test of a guard meant for every real radiograph, so the
chest radiograph is also judged in mild variants a reader's files differ by (crops, a
mirror image, another gamma, local contrast equalisation): a guard whose margin on the
original is small misses some of them (benchmarks/RESULTS.md, 2026-12-03 sixth session).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BLANK_SIDE = 512


@dataclass(frozen=True)
class DicomExample:
    """A DICOM file from pydicom's test data and what it shows."""

    name: str
    shows: str
    package: str   # which PyPI package ships it
    variants: bool = False   # also judge mild variants of it (`real_variants`)


DICOM_EXAMPLES = (
    DicomExample("RG1_UNCR.dcm", "real CR chest radiograph (MONOCHROME1)", "pydicom-data", variants=True),
    DicomExample("RG3_UNCR.dcm", "CR extremity (tibia)", "pydicom-data"),
    DicomExample("MR2_UNCR.dcm", "MR slice", "pydicom-data"),
    DicomExample("MR_small.dcm", "MR slice", "pydicom"),
    DicomExample("CT_small.dcm", "CT slice", "pydicom"),
)
BLANKS = {"black": 0, "grey": 128, "white": 255}


def find_test_file(name: str) -> str | None:
    """Local path of one of pydicom's test files (its own or ``pydicom-data``'s), or None."""
    from pydicom.data import get_testdata_file

    return get_testdata_file(name, download=False)


def _centre_crop(pixels: np.ndarray, keep: float) -> np.ndarray:
    h, w = pixels.shape[:2]
    dy, dx = round(h * (1 - keep) / 2), round(w * (1 - keep) / 2)
    return pixels[dy:h - dy, dx:w - dx]


def _gamma(pixels: np.ndarray, gamma: float) -> np.ndarray:
    table = np.round(255 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    return table[pixels]


def real_variants(pixels: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Mild variants of an 8-bit radiograph (name, pixels): what other files of the same
    kind differ by. Each must be flagged wherever the original is."""
    from training.data.augment import apply_clahe

    return [*((f"centre crop {round(keep * 100)} %", _centre_crop(pixels, keep)) for keep in (0.9, 0.8, 0.7)),
            ("mirrored", np.ascontiguousarray(pixels[:, ::-1])),
            ("gamma 0.7", _gamma(pixels, 0.7)), ("gamma 1.4", _gamma(pixels, 1.4)),
            ("CLAHE", apply_clahe(pixels, clip_limit=2.0, tile=8)),
            ("top 85 %", pixels[: round(pixels.shape[0] * 0.85)])]


def _blank_pixels(value: int) -> np.ndarray:
    return np.full((BLANK_SIDE, BLANK_SIDE), value, np.uint8)


def example_views() -> tuple[list[tuple[str, str, Any]], list[dict[str, str]]]:
    """(label, shows, ViewInput) per readable example, and a skip row per missing one."""
    from cxrclip.engine import ViewInput
    from cxrclip.image_io import ImageReadError, read_file

    views: list[tuple[str, str, Any]] = []
    skipped: list[dict[str, str]] = []
    for example in DICOM_EXAMPLES:
        path = find_test_file(example.name)
        if path is None:
            skipped.append({"image": example.name, "shows": example.shows,
                            "skipped": f"{example.name} not found locally: install the PyPI package "
                                       f"{example.package} (pip install {example.package})"})
            continue
        try:
            image = read_file(path)
        except ImageReadError as exc:
            skipped.append({"image": example.name, "shows": example.shows, "skipped": str(exc)})
            continue
        views.append((example.name, example.shows, ViewInput(f"ood-example/{example.name}", image.pixels)))
        if example.variants and image.pixels.ndim == 2 and image.pixels.dtype == np.uint8:
            views += [(f"{example.name}, {name}", f"{example.shows}, variant",
                       ViewInput(f"ood-example/{example.name}/{name}", pixels))
                      for name, pixels in real_variants(image.pixels)]
    for colour, value in BLANKS.items():
        label = f"blank {colour} {BLANK_SIDE}x{BLANK_SIDE}"
        views.append((label, "blank image", ViewInput(f"ood-example/blank-{colour}", _blank_pixels(value))))
    return views, skipped


def ood_examples(engine: Any) -> dict[str, Any]:
    """Flag, score and threshold per example image (rows), or why the guard cannot say."""
    if engine.ood_guard is None:
        return {"skipped": "the model folder has no ood.json/ood.npz (run `cxrclip calibrate --ood-data`)"}
    views, rows = example_views()
    verdicts = engine.out_of_distribution([view for _, _, view in views])
    for (label, shows, _), verdict in zip(views, verdicts):
        rows.append({"image": label, "shows": shows, **verdict.to_dict()})
    flagged = [r for r in rows if "flag" in r]
    return {"threshold": float(engine.ood_guard.threshold), "rows": rows,
            "flagged": sum(r["flag"] for r in flagged), "judged": len(flagged)}


def markdown_rows(result: dict[str, Any]) -> list[str]:
    """A Markdown table of the examples (or the reason there is none)."""
    if "skipped" in result:
        return [f"OOD flags on real and non-chest images: skipped ({result['skipped']})."]
    lines = [f"| image | shows | distance (threshold {result['threshold']:.2f}) | flagged |",
             "|---|---|---|---|"]
    for row in result["rows"]:
        if "skipped" in row:
            lines.append(f"| {row['image']} | {row['shows']} | – | skipped: {row['skipped']} |")
        else:
            lines.append(f"| {row['image']} | {row['shows']} | {row['score']:.2f} | "
                         f"{'yes' if row['flag'] else 'NO'} |")
    return lines
