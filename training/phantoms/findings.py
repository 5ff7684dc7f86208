"""Ground truth of a phantom study: which findings it has, where, and how severe.

A ``Finding`` is described in a simple 3-D sense (side, craniocaudal zone, and
anterior/posterior position) so that the frontal and the lateral view can draw it
consistently. ``sample_findings`` draws a plausible mix for one study.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

FALLBACK_CHEXPERT_14 = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity",
    "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
    "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices",
)

SEVERITIES = ("mild", "moderate", "severe")

# Lobe -> (side, zone, anterior/posterior position).
LOBES: dict[str, tuple[str, str, str]] = {
    "right upper lobe": ("right", "upper", "middle"),
    "right middle lobe": ("right", "mid", "anterior"),
    "right lower lobe": ("right", "lower", "posterior"),
    "left upper lobe": ("left", "upper", "middle"),
    "lingula": ("left", "mid", "anterior"),
    "left lower lobe": ("left", "lower", "posterior"),
}

PATHOLOGIES = (
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture",
)
# Relative sampling weights of the primary finding of an abnormal study.
_WEIGHTS = {
    "Enlarged Cardiomediastinum": 0.8, "Cardiomegaly": 1.2, "Lung Opacity": 0.8,
    "Lung Lesion": 1.0, "Edema": 1.0, "Consolidation": 1.0, "Pneumonia": 1.0,
    "Atelectasis": 1.0, "Pneumothorax": 1.0, "Pleural Effusion": 1.3, "Pleural Other": 0.7,
    "Fracture": 0.8,
}
DEVICE_KINDS = ("endotracheal tube", "enteric tube", "central venous catheter", "pacemaker")
# Findings that may be reported with uncertainty (label -1) when mild.
UNCERTAIN_OK = {"Lung Opacity", "Edema", "Consolidation", "Pneumonia", "Atelectasis",
                "Pleural Effusion", "Pneumothorax", "Fracture", "Lung Lesion"}


def chexpert_14() -> tuple[str, ...]:
    """The 14 CheXpert finding names, from ``cxrclip.prompts`` when it is present."""
    try:
        from cxrclip.prompts import CHEXPERT_14
    except ImportError:
        return FALLBACK_CHEXPERT_14
    names = tuple(CHEXPERT_14)
    return names if set(names) == set(FALLBACK_CHEXPERT_14) else FALLBACK_CHEXPERT_14


@dataclass
class Finding:
    """One abnormality (or device) drawn into both views and described in the report."""

    name: str
    side: str | None = None          # "right" | "left" | "bilateral" | None
    zone: str | None = None          # "upper" | "mid" | "lower" | None
    ap: str | None = None            # "anterior" | "middle" | "posterior" | None
    location: str | None = None      # lobe or wording used in the report
    severity: str = "moderate"
    kind: str | None = None          # subtype: nodule/mass, device kind, ...
    uncertain: bool = False
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def level(self) -> int:
        """Severity as 1 (mild), 2 (moderate) or 3 (severe)."""
        return SEVERITIES.index(self.severity) + 1

    def sides(self) -> list[str]:
        """The sides this finding is drawn on."""
        if self.side == "bilateral":
            return ["right", "left"]
        return [self.side] if self.side else []

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``ground_truth.jsonl``."""
        return asdict(self)


def _pick(rng: np.random.Generator, items: tuple | list) -> Any:
    return items[int(rng.integers(len(items)))]


def _severity(rng: np.random.Generator, p: tuple[float, float, float] = (0.4, 0.4, 0.2)) -> str:
    return SEVERITIES[int(rng.choice(3, p=p))]


def _lobe_finding(rng: np.random.Generator, name: str, **kw: Any) -> Finding:
    lobe = _pick(rng, list(LOBES))
    side, zone, ap = LOBES[lobe]
    return Finding(name, side=side, zone=zone, ap=ap, location=lobe, **kw)


def make_finding(rng: np.random.Generator, name: str) -> Finding:
    """A random instance of the named finding with location, severity and subtype."""
    sev = _severity(rng)
    if name in ("Cardiomegaly", "Enlarged Cardiomediastinum"):
        return Finding(name, severity=sev)
    if name == "Edema":
        return Finding(name, side="bilateral", zone="mid", location="perihilar", severity=sev)
    if name in ("Consolidation", "Pneumonia", "Lung Opacity"):
        f = _lobe_finding(rng, name, severity=sev)
        f.params["bronchograms"] = bool(rng.random() < 0.5) and name != "Lung Opacity"
        return f
    if name == "Atelectasis":
        side = _pick(rng, ("right", "left"))
        kind = _pick(rng, ("plate-like", "plate-like", "subsegmental", "lobar"))
        zone = "lower" if kind != "lobar" or rng.random() < 0.7 else "mid"
        return Finding(name, side=side, zone=zone, ap="posterior", location=f"{side} base",
                       severity="severe" if kind == "lobar" else _severity(rng, (0.6, 0.4, 0)),
                       kind=kind)
    if name == "Lung Lesion":
        f = _lobe_finding(rng, name, severity=sev)
        mass = rng.random() < 0.4
        f.kind = "mass" if mass else "nodule"
        f.params["size_cm"] = round(float(rng.uniform(3.5, 7.0) if mass else rng.uniform(1.0, 2.8)), 1)
        return f
    if name == "Pneumothorax":
        return Finding(name, side=_pick(rng, ("right", "left")), zone="upper", ap="anterior",
                       location="apical", severity=sev)
    if name == "Pleural Effusion":
        side = _pick(rng, ("right", "left", "bilateral"))
        return Finding(name, side=side, zone="lower", ap="posterior", location="base",
                       severity=_severity(rng, (0.45, 0.4, 0.15)))
    if name == "Pleural Other":
        return Finding(name, side=_pick(rng, ("right", "left", "bilateral")), zone="mid",
                       ap="middle", location="lateral chest wall", severity=sev,
                       kind=_pick(rng, ("pleural thickening", "calcified pleural plaques")))
    if name == "Fracture":
        side = _pick(rng, ("right", "left"))
        rib = int(rng.integers(4, 9))
        return Finding(name, side=side, zone="mid", ap="middle", location="lateral",
                       severity=sev, kind="rib", params={"rib": rib})
    raise ValueError(f"unknown finding {name!r}; choose one of {PATHOLOGIES}")


def make_devices(rng: np.random.Generator) -> Finding:
    """A ``Support Devices`` finding listing one to three devices."""
    n = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
    kinds = sorted(rng.choice(len(DEVICE_KINDS), size=n, replace=False).tolist())
    return Finding("Support Devices", kind=",".join(DEVICE_KINDS[k] for k in kinds))


def _no_conflict(findings: list[Finding], new: Finding) -> bool:
    names = {f.name for f in findings}
    if new.name in names:
        return False
    for f in findings:
        pair = {f.name, new.name}
        if pair == {"Pneumothorax", "Pleural Effusion"} and (
                f.side == new.side or "bilateral" in (f.side, new.side)):
            return False
        if pair == {"Pneumothorax", "Atelectasis"} and f.side == new.side:
            return False
    return True


def sample_findings(rng: np.random.Generator, p_normal: float = 0.3,
                    p_devices: float = 0.2) -> list[Finding]:
    """Draw the findings of one study: about ``p_normal`` have none (devices aside)."""
    findings: list[Finding] = []
    if rng.random() >= p_normal:
        if rng.random() < 0.12:  # heart-failure picture
            findings += [make_finding(rng, "Cardiomegaly"), make_finding(rng, "Edema")]
            if rng.random() < 0.6:
                eff = make_finding(rng, "Pleural Effusion")
                eff.side = "bilateral"
                findings.append(eff)
        else:
            n = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
            names = list(_WEIGHTS)
            w = np.array([_WEIGHTS[k] for k in names])
            for _ in range(n * 3):
                if len(findings) >= n:
                    break
                cand = make_finding(rng, names[int(rng.choice(len(names), p=w / w.sum()))])
                if _no_conflict(findings, cand):
                    findings.append(cand)
        for f in findings:
            if f.name in UNCERTAIN_OK and f.severity == "mild" and rng.random() < 0.3:
                f.uncertain = True
    if rng.random() < p_devices:
        findings.append(make_devices(rng))
    return findings
