"""Per-study anatomy parameters shared by the frontal and the lateral view.

Lengths are fractions of the image size. Both views share the vertical geometry
(apex and diaphragm levels), so a finding at a given height appears at the same
height in both.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from training.phantoms.findings import Finding


@dataclass(frozen=True)
class Anatomy:
    """Shape, exposure and positioning parameters of one phantom patient."""

    sex: str = "M"
    age: int = 55
    projection: str = "PA"       # "PA" or "AP"
    cx: float = 0.5              # midline of the frontal view
    half_width: float = 0.37     # inner thoracic half-width at the costophrenic angles
    body_margin: float = 0.08    # soft tissue outside the ribs
    v_apex: float = 0.13         # lung apices
    v_dome: float = 0.68         # top of the right hemidiaphragm
    dome_left_offset: float = 0.025
    dome_depth: float = 0.08     # drop from dome top to the lateral costophrenic angle
    left_dome_raise: float = 0.0  # volume loss raises a hemidiaphragm
    right_dome_raise: float = 0.0
    ctr: float = 0.45            # cardiothoracic ratio
    heart_height: float = 0.17
    mediastinum: float = 0.058   # upper mediastinum half-width
    knob: float = 0.028          # aortic knob radius
    rib_spacing: float = 0.052
    rib_width: float = 0.019
    breasts: bool = False
    rotation_deg: float = 0.0
    gamma: float = 1.0
    contrast: float = 1.0
    noise: float = 0.012
    edge_enhance: float = 0.5
    lat_front: float = 0.16      # anterior chest wall in the lateral view
    lat_back: float = 0.86       # posterior chest wall in the lateral view
    vessel_seed: int = 0

    @property
    def dome_right(self) -> float:
        """Top of the right hemidiaphragm after any volume loss."""
        return self.v_dome - self.right_dome_raise

    @property
    def dome_left(self) -> float:
        """Top of the left hemidiaphragm (normally a little lower than the right)."""
        return self.v_dome + self.dome_left_offset - self.left_dome_raise

    def dome(self, side: str) -> float:
        """Top of the hemidiaphragm on ``side`` (``right``/``left``)."""
        return self.dome_right if side == "right" else self.dome_left


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Random healthy-range anatomy, exposure and positioning."""
    sex = "F" if rng.random() < 0.48 else "M"
    hw = float(rng.uniform(0.33, 0.39))
    return Anatomy(
        sex=sex,
        age=int(rng.integers(22, 90)),
        projection="AP" if rng.random() < 0.25 else "PA",
        cx=float(0.5 + rng.normal(0, 0.012)),
        half_width=hw,
        body_margin=float(rng.uniform(0.06, 0.1)),
        v_apex=float(rng.uniform(0.10, 0.15)),
        v_dome=float(rng.uniform(0.63, 0.72)),
        dome_left_offset=float(rng.uniform(0.012, 0.035)),
        dome_depth=float(rng.uniform(0.06, 0.1)),
        ctr=float(rng.uniform(0.39, 0.48)),
        heart_height=float(rng.uniform(0.15, 0.19)),
        mediastinum=float(rng.uniform(0.05, 0.065)),
        knob=float(rng.uniform(0.022, 0.032)),
        rib_spacing=float(rng.uniform(0.048, 0.056)),
        rib_width=float(rng.uniform(0.016, 0.021)),
        breasts=sex == "F" and rng.random() < 0.8,
        rotation_deg=float(rng.normal(0, 1.2)),
        gamma=float(rng.uniform(0.85, 1.2)),
        contrast=float(rng.uniform(0.9, 1.1)),
        noise=float(rng.uniform(0.006, 0.018)),
        edge_enhance=float(rng.uniform(0.3, 0.8)),
        lat_front=float(rng.uniform(0.13, 0.19)),
        lat_back=float(rng.uniform(0.84, 0.89)),
        vessel_seed=int(rng.integers(2**31)),
    )


def adapt_anatomy(anat: Anatomy, findings: list[Finding]) -> Anatomy:
    """Apply findings that change the anatomy itself (heart size, mediastinum, volume)."""
    changes: dict[str, float] = {}
    for f in findings:
        if f.name == "Cardiomegaly":
            changes["ctr"] = (0.535, 0.59, 0.65)[f.level - 1] + 0.01 * (f.params.get("jitter", 0.0))
            changes["heart_height"] = anat.heart_height * (1.0 + 0.1 * f.level)
        elif f.name == "Enlarged Cardiomediastinum":
            changes["mediastinum"] = (0.085, 0.1, 0.12)[f.level - 1]
            changes["knob"] = anat.knob * 1.25
        elif f.name == "Atelectasis" and f.kind in ("lobar", "plate-like"):
            raise_by = 0.035 if f.kind == "lobar" else 0.015 * f.level
            changes[f"{f.side}_dome_raise"] = raise_by
    return replace(anat, **changes) if changes else anat
