"""Write a model's calibration, operating points and OOD guard into its card files.

``model_card.json``: ``extra.operating_points`` (finding -> calibrated probability),
``extra.calibration`` (method per finding, data, command, rules), ``extra.ood`` and
``extra.heatmap_reference``.
``MODEL_CARD.md``: a "Calibration and operating points" section between markers,
replaced when ``cxrclip calibrate`` runs again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cxrclip.calibration import Calibration

START = "<!-- calibration:start (written by cxrclip calibrate) -->"
END = "<!-- calibration:end -->"


_REPRESENTATION_TEXT = {"mean_feature_map": "spatial mean of the projected feature map (not normalised)",
                        "unit_embedding": "L2-normalised image embedding"}


_VIEWS_TEXT = {"frontal": "each study's frontal view",
               "study": "each study from all its views, as the viewer scores it"}


def card_extra(calibration: Calibration, ood: dict[str, Any] | None) -> dict[str, Any]:
    """The ``extra`` keys this module owns."""
    out: dict[str, Any] = {
        "operating_points": calibration.operating_points(),
        "calibration": {"file": "calibration.json", "data": calibration.data, "split": calibration.split,
                        "views": calibration.views,
                        "command": calibration.command, "no_finding": calibration.no_finding,
                        "methods": {n: c.method for n, c in calibration.findings.items()},
                        "method_rule": calibration.method_rule,
                        "operating_point_rule": calibration.operating_point_rule}}
    if ood is not None:
        out["ood"] = {"files": ["ood.json", "ood.npz"], "threshold": ood["threshold"],
                      "prompt_threshold": ood.get("prompt_threshold"),
                      "statistics_data": ood.get("statistics_data"),
                      "threshold_percentile": ood.get("threshold_percentile"),
                      "representation": ood.get("representation")}
        if ood.get("heatmap_reference"):
            out["heatmap_reference"] = {"files": ["heatmap_reference.json", "heatmap_reference.npz"],
                                        **ood["heatmap_reference"]}
    return out


def markdown_section(calibration: Calibration, ood: dict[str, Any] | None) -> str:
    """The Markdown section (with its markers)."""
    lines = [START, "## Calibration and operating points", "",
             f"Fitted by `{calibration.command or 'cxrclip calibrate'}` on {', '.join(calibration.data)} "
             f"(split `{calibration.split}`, {_VIEWS_TEXT.get(calibration.views, calibration.views)}), stored in "
             "`calibration.json`. No Finding = 1 - max over the other "
             f"findings (Support Devices excluded), then calibrated. Method rule: {calibration.method_rule}. "
             f"Operating point rule: {calibration.operating_point_rule}.", "",
             "| finding | method | positives | negatives | operating point | ECE before | ECE after "
             "| Brier before | Brier after |", "|---|---|---|---|---|---|---|---|---|"]
    for name, c in sorted(calibration.findings.items()):
        rel = calibration.reliability.get(name, {})
        point = "" if c.operating_point is None else f"{c.operating_point:.3f}"
        lines.append(f"| {name} | {c.method} | {c.n_positive} | {c.n_negative} | {point} | "
                     f"{rel.get('ece_before', '')} | {rel.get('ece_after', '')} | "
                     f"{rel.get('brier_before', '')} | {rel.get('brier_after', '')} |")
    lines += ["", "ECE/Brier here are on the fitting data; held-out figures are in the section above."]
    if ood is not None:
        lines += ["", "## Out-of-distribution guard", "",
                  f"`ood.json` + `ood.npz`: Mahalanobis distance of each view's "
                  f"{_REPRESENTATION_TEXT.get(ood.get('representation'), 'image vector')} to "
                  f"{ood.get('n_statistics')} views of {', '.join(ood.get('statistics_data') or [])} "
                  f"(shrinkage {ood.get('shrinkage')}); threshold {ood['threshold']:.3f} = "
                  f"{ood.get('threshold_percentile')}th percentile of {ood.get('n_threshold')} held-out "
                  f"in-distribution views. Prompt hint when a word is not among the {ood.get('n_vocabulary')} "
                  f"words of {ood.get('n_reference_sentences')} reference sentences and the class prompts, or "
                  f"the highest cosine to those sentences is below {ood.get('prompt_threshold')}."]
        lines += _reference_lines(ood.get("heatmap_reference"))
    lines.append(END)
    return "\n".join(lines) + "\n"


def _reference_lines(reference: dict[str, Any] | None) -> list[str]:
    if not reference:
        return []
    if "skipped" in reference:
        return ["", "## Heatmap reference", "", f"Not written: {reference['skipped']}."]
    counts = ", ".join(f"{n} {kind}" for kind, n in (reference.get("n_views") or {}).items())
    return ["", "## Heatmap reference", "",
            f"`heatmap_reference.json` + `.npz`: mean projected feature map of the normal views ({counts}) of "
            f"{', '.join(reference.get('data') or [])}; contribution heatmaps show each location's share of the "
            "logit minus that of this normal chest (`cxrclip.heatmap_reference`)."]


def update_card_files(model_dir: Path, calibration: Calibration, ood: dict[str, Any] | None) -> None:
    """Merge into ``model_card.json`` and replace/append the section of ``MODEL_CARD.md``."""
    card_json = model_dir / "model_card.json"
    card = json.loads(card_json.read_text(encoding="utf-8")) if card_json.is_file() else {}
    card.setdefault("extra", {}).update(card_extra(calibration, ood))
    card_json.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    replace_card_section(model_dir / "MODEL_CARD.md", START, END, markdown_section(calibration, ood))


def replace_card_section(card_md: Path, start: str, end: str, section: str) -> None:
    """Put ``section`` (which begins with ``start`` and ends with ``end``) in place of the
    text between those markers in ``card_md``, or append it when the markers are absent."""
    text = card_md.read_text(encoding="utf-8") if card_md.is_file() else ""
    if start in text and end in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    card_md.write_text(text, encoding="utf-8")
