"""The lateral view: base anatomy layers.

Anterior is image left, posterior image right (patient facing left, as a left
lateral is usually displayed). Both lungs superimpose, each kept as its own layer
so a one-sided finding fills only its lung. Heights match the frontal view.
"""
from __future__ import annotations

import numpy as np

from training.phantoms.anatomy import Anatomy
from training.phantoms.draw import Canvas, bezier, blur, ellipse_sd, grid, smooth, soft_ellipse
from training.phantoms.layers import Layers
from training.phantoms.vessels import vessel_tree

EDGE = 0.007
LATERAL_BODY = 1.35   # the beam crosses the wider transverse diameter


def anterior_border(anat: Anatomy) -> float:
    """``u`` of the anterior lung border (behind the sternum)."""
    return anat.lat_front + 0.035


def posterior_border(anat: Anatomy) -> float:
    """``u`` of the posterior lung border (posterior ribs)."""
    return anat.lat_back - 0.035


def dome_peak_u(anat: Anatomy) -> float:
    """``u`` of the highest point of the hemidiaphragms in the lateral view."""
    return anat.lat_front + 0.42 * (anat.lat_back - anat.lat_front)


def hilum_uv(anat: Anatomy) -> tuple[float, float]:
    """Centre of the hila in the lateral view."""
    return anat.lat_front + 0.5 * (anat.lat_back - anat.lat_front), anat.v_apex + 0.25


def diaphragm_v(anat: Anatomy, side: str, u: np.ndarray) -> np.ndarray:
    """Height of one hemidiaphragm in the lateral view (deep posterior sulcus)."""
    a, p, peak = anterior_border(anat), posterior_border(anat), dome_peak_u(anat)
    post = 1.6 * anat.dome_depth * ((u - peak) / (p - peak)) ** 2
    ant = 0.05 * ((peak - u) / (peak - a)) ** 2
    shift = 0.0 if side == "right" else 0.01
    return anat.dome(side) + shift + np.where(u > peak, post, ant)


def lung_sd(anat: Anatomy, side: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance to one lung in the lateral projection."""
    a, p = anterior_border(anat), posterior_border(anat)
    c = a + 0.55 * (p - a)
    bottom = anat.dome(side) + 1.6 * anat.dome_depth
    t = np.clip((v - anat.v_apex + 0.01) / (bottom - anat.v_apex), 0, 1)
    g = np.sqrt(1.0 - (1.0 - np.minimum(t * 1.6, 1.0)) ** 2)
    front, back = c - (c - a) * g, c + (p - c) * g
    s = np.minimum(u - front, back - u)
    s = np.minimum(s, diaphragm_v(anat, side, u) - v)
    return np.minimum(s, (v - anat.v_apex + 0.01) * 0.7)


def heart_params(anat: Anatomy) -> tuple[float, float, float, float]:
    """Centre and semi-axes of the heart in the lateral view; grows with the CTR."""
    grow = max(0.0, anat.ctr - 0.45)
    a = 0.17 + 0.55 * grow
    return anat.lat_front + 0.02 + 0.8 * a, anat.dome_right, a, anat.heart_height * 1.0


def _body(anat: Anatomy, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rise = np.clip(v / 0.16, 0, 1)
    rise = rise * rise * (3 - 2 * rise)
    front = 0.3 + (anat.lat_front - 0.03 - 0.3) * rise
    back = 0.72 + (anat.lat_back + 0.04 - 0.72) * rise
    front = front - 0.03 * np.clip((v - 0.35) / 0.4, 0, 1)
    uc, half = (front + back) / 2, (back - front) / 2
    body = np.sqrt(np.clip(1.0 - ((u - uc) / half) ** 2, 0, 1)) ** 0.5
    arms = soft_ellipse(u, v, 0.45, 0.06, 0.32, 0.11, 0.05)
    return (LATERAL_BODY * body + 0.25 * arms).astype(np.float32)


def _heart(anat: Anatomy, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cu, cv, a, b = heart_params(anat)
    sd = ellipse_sd(u, v, cu, cv, a, b, angle_deg=-35)
    heart = smooth(sd, EDGE) * (0.6 + 0.4 * np.sqrt(np.clip(sd / 0.05, 0, 1)))
    return heart * smooth(diaphragm_v(anat, "right", u) + 0.01 - v, 0.012)


def _vessels_and_airway(anat: Anatomy, size: int) -> tuple[np.ndarray, np.ndarray]:
    hu, hv = hilum_uv(anat)
    aorta, trachea = Canvas(size), Canvas(size)
    aorta.polyline(bezier([(hu - 0.1, anat.dome_right - 0.16), (hu - 0.1, anat.v_apex + 0.06),
                           (hu + 0.1, anat.v_apex + 0.04), (hu + 0.16, anat.v_apex + 0.3),
                           (hu + 0.17, anat.dome_right + 0.05)], 48), 0.036)
    carina = anat.v_apex + 0.2
    trachea.polyline(np.array([[hu - 0.07, 0.0], [hu - 0.01, carina]]), 0.028)
    trachea.polyline(np.array([[hu - 0.01, carina], [hu + 0.005, carina + 0.05]]), 0.02)
    return blur(aorta.read(), 0.004), blur(trachea.read(), 0.003)


def _bones(anat: Anatomy, size: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    ribs, spine, sternum = Canvas(size), Canvas(size), Canvas(size)
    su = anat.lat_back - 0.1
    vv = anat.v_apex - 0.06
    while vv < 1.0:
        h = 0.04 * (1 + 0.3 * vv)
        kyph = 0.025 * np.sin(np.pi * np.clip(vv, 0, 1))
        cu = su + kyph
        w = 0.04 + 0.012 * vv
        spine.polygon(np.array([[cu - w, vv], [cu + w, vv + 0.004], [cu + w, vv + h * 0.82],
                                [cu - w, vv + h * 0.8]]))
        spine.ellipse(cu + w + 0.03, vv + 0.5 * h, 0.022, 0.012, value=0.6)
        vv += h
    sternum.polyline(np.array([[anat.lat_front + 0.01, anat.v_apex + 0.06],
                               [anat.lat_front + 0.003, anat.dome_right - 0.08]]), 0.02)
    sternum.ellipse(anat.lat_front + 0.015, anat.v_apex + 0.07, 0.014, 0.03)
    for k in range(10):
        v0 = anat.v_apex + k * anat.rib_spacing
        ribs.polyline(bezier([(anat.lat_back - 0.02, v0), (0.55, v0 + 0.06),
                              (anat.lat_front + 0.05, v0 + 0.2)], 30), anat.rib_width * 0.8)
    spine_img = blur(spine.read(), 0.003)
    lucent = 1.0 - 0.3 * np.clip((v - anat.v_apex) / (anat.v_dome - anat.v_apex), 0, 1)
    return (0.12 * spine_img * lucent + 0.16 * blur(sternum.read(), 0.002)
            + 0.04 * blur(ribs.read(), 0.003)).astype(np.float32)


def lateral_layers(anat: Anatomy, size: int) -> Layers:
    """Base layers of the lateral view for this anatomy."""
    u, v = grid(size)
    rng = np.random.default_rng(anat.vessel_seed + 1)
    hu, hv = hilum_uv(anat)
    lungs, depth, vessels = {}, {}, {}
    angles = np.sort(rng.uniform(-np.pi, np.pi, 9))
    for side in ("right", "left"):
        lungs[side] = smooth(lung_sd(anat, side, u, v), EDGE)
        depth[side] = np.full((size, size), 0.6, np.float32)
        vessels[side] = vessel_tree(size, rng, (hu, hv), list(angles + (0.3 if side == "left" else 0)),
                                    0.32, width=0.004, depth=3)
    aorta, trachea = _vessels_and_airway(anat, size)
    body = _body(anat, u, v) - 0.22 * trachea
    stomach = soft_ellipse(u, v, anat.lat_front + 0.22, anat.dome_left + 0.06, 0.06, 0.03, 0.01)
    body = body - 0.25 * stomach
    hilum = soft_ellipse(u, v, hu, hv, 0.05, 0.06, 0.03)
    widening = float(np.clip((anat.mediastinum - 0.066) / 0.05, 0, 1))
    if widening > 0:   # anterior mediastinal fullness fills the retrosternal space
        hilum = hilum + 2.0 * widening * soft_ellipse(
            u, v, anat.lat_front + 0.1, anat.v_apex + 0.16, 0.06 + 0.04 * widening, 0.12, 0.02)
    return Layers(size=size, body=body, lungs=lungs, lung_depth=depth,
                  heart=_heart(anat, u, v), mediastinum=np.clip(0.25 * aorta + 0.4 * hilum, 0, 1),
                  bone=_bones(anat, size, u, v), vessels=vessels)
