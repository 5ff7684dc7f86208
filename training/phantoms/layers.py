"""The attenuation layers of one view and how they combine.

Each view is built as separate layers (body, lungs per side, heart, bones, vessels,
finding densities, devices) so that findings can act on the right layer: an
effusion fills a lung with water density, a pneumothorax removes the vessel
markings beyond the pleural line, and so on. ``compose`` adds them up into an
attenuation image (higher = more attenuating = whiter on a MONOCHROME2 display).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SIDES = ("right", "left")

BODY_W = 1.0
LUNG_DEFICIT = 0.62
HEART_W = 0.30
MEDIASTINUM_W = 0.18
VESSEL_W = 0.13


@dataclass
class Layers:
    """Attenuation layers of one view; all arrays are ``size x size`` float32."""

    size: int
    body: np.ndarray
    lungs: dict[str, np.ndarray]
    lung_depth: dict[str, np.ndarray]
    heart: np.ndarray
    mediastinum: np.ndarray
    bone: np.ndarray
    vessels: dict[str, np.ndarray]
    fill: dict[str, np.ndarray] = field(default_factory=dict)     # 0..1 airspace filling
    markings_mask: dict[str, np.ndarray] = field(default_factory=dict)
    add: np.ndarray | None = None        # extra attenuation (lesions, plaques, lines)
    metal: np.ndarray | None = None      # radiopaque devices

    def __post_init__(self) -> None:
        zeros = np.zeros((self.size, self.size), np.float32)
        for s in SIDES:
            self.fill.setdefault(s, zeros.copy())
            self.markings_mask.setdefault(s, np.ones_like(zeros))
        if self.add is None:
            self.add = zeros.copy()
        if self.metal is None:
            self.metal = zeros.copy()

    def add_fill(self, side: str, amount: np.ndarray) -> None:
        """Fill airspaces of one lung (0 = air, 1 = water density), combining softly."""
        f = self.fill[side]
        self.fill[side] = 1.0 - (1.0 - f) * (1.0 - np.clip(amount, 0.0, 1.0))


def compose(layers: Layers) -> np.ndarray:
    """Sum the layers into one attenuation image (about 0 for air, ~1.3 for bone)."""
    overlap = 1.0 - 0.55 * layers.heart - 0.5 * layers.mediastinum
    a = BODY_W * layers.body + HEART_W * layers.heart + MEDIASTINUM_W * layers.mediastinum
    for s in SIDES:
        lung = layers.lungs[s] * layers.lung_depth[s]
        a = a - LUNG_DEFICIT * lung * overlap * (1.0 - layers.fill[s])
        marks = layers.vessels[s] * layers.markings_mask[s] * (1.0 - layers.fill[s])
        a = a + VESSEL_W * marks * layers.lungs[s]
    a = a + layers.bone + layers.add + layers.metal
    return a.astype(np.float32)
