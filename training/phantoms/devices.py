"""Radiopaque support devices: ET tube, enteric tube, central line, pacemaker."""
from __future__ import annotations

import numpy as np

from training.phantoms import lateral as la
from training.phantoms.anatomy import Anatomy
from training.phantoms.draw import Canvas, bezier, blur
from training.phantoms.findings import Finding
from training.phantoms.layers import Layers


def _frontal(c: Canvas, gen: Canvas, anat: Anatomy, kind: str) -> None:
    cx, ap, carina = anat.cx, anat.v_apex, anat.v_apex + 0.17
    if kind == "endotracheal tube":
        c.polyline(np.array([[cx + 0.012, 0.0], [cx + 0.006, carina - 0.06]]), 0.005, 0.9)
    elif kind == "enteric tube":
        dl = anat.dome_left
        c.polyline(bezier([(cx + 0.01, 0.0), (cx + 0.02, ap + 0.3), (cx + 0.03, dl),
                           (cx + 0.12, dl + 0.08), (cx + 0.2, dl + 0.07)], 60), 0.0045, 0.8)
    elif kind == "central venous catheter":
        c.polyline(bezier([(cx - 0.1, 0.0), (cx - 0.08, ap + 0.06), (cx - 0.04, ap + 0.15),
                           (cx - 0.035, ap + 0.27)], 40), 0.0045, 0.85)
    elif kind == "pacemaker":
        gu, gv = cx + 0.22, ap + 0.06
        gen.ellipse(gu, gv, 0.042, 0.03, angle=-10)
        dr = anat.dome_right
        for tip in ((cx - 0.05, dr - 0.1), (cx + 0.12, dr - 0.02)):
            c.polyline(bezier([(gu - 0.03, gv), (cx + 0.05, ap - 0.02), (cx - 0.04, ap + 0.12),
                               (cx - 0.06, dr - 0.12), tip], 60), 0.006, 1.0)


def _lateral(c: Canvas, gen: Canvas, anat: Anatomy, kind: str) -> None:
    hu, hv = la.hilum_uv(anat)
    carina = anat.v_apex + 0.2
    if kind == "endotracheal tube":
        c.polyline(np.array([[hu - 0.075, 0.0], [hu - 0.02, carina - 0.06]]), 0.005, 0.9)
    elif kind == "enteric tube":
        c.polyline(bezier([(hu - 0.03, 0.0), (hu + 0.06, hv), (hu + 0.05, anat.dome_left),
                           (anat.lat_front + 0.22, anat.dome_left + 0.07)], 60), 0.0045, 0.8)
    elif kind == "central venous catheter":
        c.polyline(bezier([(hu - 0.05, 0.0), (hu - 0.09, anat.v_apex + 0.1),
                           (hu - 0.09, anat.v_apex + 0.27)], 40), 0.0045, 0.85)
    elif kind == "pacemaker":
        gu, gv = anat.lat_front - 0.01, anat.v_apex + 0.06
        gen.ellipse(gu, gv, 0.012, 0.04)
        cu, cv, a, b = la.heart_params(anat)
        c.polyline(bezier([(gu, gv), (hu - 0.08, anat.v_apex + 0.05), (hu - 0.1, cv - 0.1),
                           (cu - 0.3 * a, cv + 0.05)], 60), 0.006, 1.0)


def draw_devices(layers: Layers, anat: Anatomy, f: Finding, view: str,
                 rng: np.random.Generator) -> None:
    """Add every device listed in ``f.kind`` (comma-separated) to the metal layer."""
    c, gen = Canvas(layers.size), Canvas(layers.size)
    for kind in (f.kind or "").split(","):
        (_frontal if view == "frontal" else _lateral)(c, gen, anat, kind.strip())
    layers.metal += 0.45 * blur(c.read(), 0.0008) + 1.2 * blur(gen.read(), 0.001)

