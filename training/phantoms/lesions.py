"""Draw findings into the layers of a frontal or lateral view.

Each finding has one drawing function that handles both views from the same
3-D description (side, zone, anterior/posterior position, severity), so the
lateral view shows it at the same height and a matching depth.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from training.phantoms import frontal as fr
from training.phantoms import lateral as la
from training.phantoms.anatomy import Anatomy
from training.phantoms.draw import Canvas, blur, grid, smooth, soft_ellipse
from training.phantoms.findings import Finding
from training.phantoms.layers import Layers

ZONE_FRACTION = {"upper": 0.2, "mid": 0.47, "lower": 0.78}
AP_FRACTION = {"anterior": 0.22, "middle": 0.45, "posterior": 0.7}
CM = 1.0 / 40.0   # the field of view is about 40 cm


def zone_v(anat: Anatomy, side: str, zone: str) -> float:
    """Height of a lung zone's centre."""
    return anat.v_apex + ZONE_FRACTION[zone] * (anat.dome(side) - anat.v_apex)


def frontal_center(anat: Anatomy, f: Finding, side: str) -> tuple[float, float]:
    """(u, v) of a finding's centre in the frontal view."""
    v = zone_v(anat, side, f.zone or "mid")
    lat = float(fr.lung_lateral(anat, side, v))
    frac = 0.45 if (f.ap == "anterior" and f.zone != "upper") else 0.6
    return float(fr.side_x(anat, side, frac * lat)), v


def lateral_center(anat: Anatomy, f: Finding, side: str) -> tuple[float, float]:
    """(u, v) of a finding's centre in the lateral view."""
    a, p = la.anterior_border(anat), la.posterior_border(anat)
    return a + AP_FRACTION[f.ap or "middle"] * (p - a), zone_v(anat, side, f.zone or "mid")


def _center(anat: Anatomy, f: Finding, side: str, view: str) -> tuple[float, float]:
    return frontal_center(anat, f, side) if view == "frontal" else lateral_center(anat, f, side)


def _patch(size: int, rng: np.random.Generator, cu: float, cv: float, radius: float,
           lumps: int, edge: float) -> np.ndarray:
    """Patchy opacity: a cluster of soft blobs around a centre."""
    u, v = grid(size)
    out = np.zeros((size, size), np.float32)
    for _ in range(lumps):
        r = radius * rng.uniform(0.35, 0.6)
        ang = rng.uniform(0, 2 * np.pi)
        dist = radius * 0.55 * np.sqrt(rng.uniform(0, 1))
        out = np.maximum(out, soft_ellipse(u, v, cu + dist * np.cos(ang), cv + dist * np.sin(ang),
                                           r, r * rng.uniform(0.7, 1.3), edge))
    return out


def _bronchograms(size: int, rng: np.random.Generator, cu: float, cv: float,
                  radius: float) -> np.ndarray:
    c = Canvas(size)
    for _ in range(3):
        ang = rng.uniform(0, 2 * np.pi)
        pts = [np.array([cu, cv]) - 0.5 * radius * np.array([np.cos(ang), np.sin(ang)])]
        for _ in range(4):
            ang += rng.normal(0, 0.25)
            pts.append(pts[-1] + 0.25 * radius * np.array([np.cos(ang), np.sin(ang)]))
        c.polyline(np.array(pts), 0.005)
    return blur(c.read(), 0.002)


def draw_airspace(layers: Layers, anat: Anatomy, f: Finding, view: str,
                  rng: np.random.Generator) -> None:
    """Consolidation, pneumonia and generic lung opacity: patchy or hazy airspace fill."""
    hazy = f.name == "Lung Opacity"
    radius = (0.06, 0.08, 0.105)[f.level - 1] * (1.15 if hazy else 1.0)
    side = f.side or "right"
    cu, cv = _center(anat, f, side, view)
    edge = 0.05 if hazy else 0.018
    patch = _patch(layers.size, rng, cu, cv, radius, 5 if hazy else 7, edge)
    amount = (0.5 + 0.08 * f.level) if hazy else (0.72 + 0.08 * f.level)
    fill = patch * amount
    if f.params.get("bronchograms") and not hazy:
        fill = fill * (1.0 - 0.4 * _bronchograms(layers.size, rng, cu, cv, radius))
    layers.add_fill(side, fill)


def draw_edema(layers: Layers, anat: Anatomy, f: Finding, view: str,
               rng: np.random.Generator) -> None:
    """Perihilar (bat-wing) haze with Kerley B lines at the lateral bases, both lungs."""
    u, v = grid(layers.size)
    amount = (0.3, 0.45, 0.6)[f.level - 1]
    for side in ("right", "left"):
        if view == "frontal":
            hu, hv = fr.side_x(anat, side, 0.13), anat.v_apex + 0.27
            haze = soft_ellipse(u, v, hu, hv, 0.17, 0.2, 0.12)
        else:
            hu, hv = la.hilum_uv(anat)
            haze = soft_ellipse(u, v, hu, hv + 0.03, 0.22, 0.22, 0.14)
        layers.add_fill(side, amount * haze)
        layers.markings_mask[side] = layers.markings_mask[side] * (1 - 0.3 * haze)
        if view == "frontal":
            c = Canvas(layers.size)
            base = anat.dome(side) + 0.5 * anat.dome_depth
            for k in range(3 + 2 * f.level):
                vk = base - 0.015 - k * 0.017 + rng.normal(0, 0.003)
                d = float(fr.lung_lateral(anat, side, vk)) - 0.004
                c.polyline(np.array([[fr.side_x(anat, side, d), vk],
                                     [fr.side_x(anat, side, d - 0.03), vk + rng.normal(0, 0.002)]]),
                           0.003)
            layers.add += 0.09 * blur(c.read(), 0.001) * layers.lungs[side]


def draw_effusion(layers: Layers, anat: Anatomy, f: Finding, view: str,
                  rng: np.random.Generator) -> None:
    """Dependent fluid: blunted costophrenic angle, meniscus rising laterally/posteriorly."""
    u, v = grid(layers.size)
    height = (0.07, 0.15, 0.27)[f.level - 1] * rng.uniform(0.9, 1.1)
    for side in f.sides():
        if view == "frontal":
            d = np.abs(u - anat.cx)
            bottom = fr.costophrenic_v(anat, side)
            rel = np.clip((d - 0.2 * anat.half_width) / (0.8 * anat.half_width), 0, 1)
            surface = bottom - height * (0.35 + 0.65 * rel ** 1.6)   # meniscus up the lateral wall
        else:
            a, p = la.anterior_border(anat), la.posterior_border(anat)
            bottom = anat.dome(side) + 1.6 * anat.dome_depth
            rel = np.clip((u - a) / (p - a), 0, 1)
            surface = bottom - height * (0.5 + 0.9 * rel) - 0.04 * rel ** 2 + 0.03
        fluid = smooth(v - surface, 0.015) * (0.85 + 0.15 * smooth(v - surface - 0.03, 0.03))
        layers.add_fill(side, 0.97 * fluid)


def _wall_distance(anat: Anatomy, side: str, view: str, u: np.ndarray,
                   v: np.ndarray) -> np.ndarray:
    """Distance inside the lung from the lateral chest wall and apex (or the front, lateral)."""
    if view == "frontal":
        d = (u - anat.cx) * fr.side_sign(side)
        return np.minimum(fr.lung_lateral(anat, side, v) - d, (v - anat.v_apex) * 0.8)
    # lateral: distance from the lung outline (apex dome, anterior and posterior borders)
    return la.lung_sd(anat, side, u, v) + 0.004


PNEUMOTHORAX_GAP = (0.035, 0.065, 0.1)   # apical retraction by severity (fraction of size)


def collapsed_lung_sd(anat: Anatomy, side: str, view: str, u: np.ndarray, v: np.ndarray,
                      gap: float) -> np.ndarray:
    """Signed distance to the retracted lung of a pneumothorax (positive inside).

    The lung outline is shrunk towards its base and medial border (frontal) or its base
    and hilum (lateral), so the apex and lateral edge retract most, as in an upright patient.
    """
    scale = 1.0 - 2.2 * gap
    if view == "frontal":
        cu, cv = fr.side_x(anat, side, 0.05), anat.dome(side) + 0.02
        sd_fn = fr.lung_sd
    else:
        cu, cv = la.hilum_uv(anat)[0], anat.dome(side) + 0.05
        sd_fn = la.lung_sd
    return sd_fn(anat, side, cu + (u - cu) / scale, cv + (v - cv) / scale) * scale


def draw_pneumothorax(layers: Layers, anat: Anatomy, f: Finding, view: str,
                      rng: np.random.Generator) -> None:
    """Retracted lung: a thin visceral pleural line with no lung markings beyond it."""
    u, v = grid(layers.size)
    side = f.side or "right"
    gap = PNEUMOTHORAX_GAP[f.level - 1] * (1.0 if view == "frontal" else 0.6)
    inside = collapsed_lung_sd(anat, side, view, u, v, gap)
    lung = layers.lungs[side]
    layers.markings_mask[side] = layers.markings_mask[side] * smooth(inside - 0.004, 0.004)
    space = smooth(-inside, 0.003) * lung
    line = np.exp(-((inside - 0.001) / 0.0022) ** 2) * lung
    strength, dark = (0.12, 0.16) if view == "frontal" else (0.03, 0.06)
    if view == "lateral":   # seen mainly at the apex and anteriorly on a lateral film
        upper = smooth(anat.v_apex + 0.3 - v, 0.08)
        space, line = space * upper, line * upper
    layers.add += strength * line - dark * space
    layers.add_fill(side, 0.01 * f.level * smooth(inside, 0.01))


def draw_atelectasis(layers: Layers, anat: Anatomy, f: Finding, view: str,
                     rng: np.random.Generator) -> None:
    """Plate-like bands at a base, or a dense lobar collapse with volume loss."""
    side = f.side or "left"
    c = Canvas(layers.size)
    v0 = zone_v(anat, side, f.zone or "lower")
    if f.kind == "lobar":
        if view == "frontal":
            pts = np.array([[fr.side_x(anat, side, 0.04), v0 - 0.12],
                            [fr.side_x(anat, side, 0.2), anat.dome(side) + 0.01],
                            [fr.side_x(anat, side, 0.04), anat.dome(side) + 0.01]])
        else:
            p = la.posterior_border(anat)
            pts = np.array([[p - 0.02, v0 - 0.12], [p, anat.dome(side) + 0.08],
                            [p - 0.22, anat.dome(side) + 0.02]])
        c.polygon(pts)
        layers.add_fill(side, 0.85 * blur(c.read(), 0.006))
        return
    n = 1 if f.kind == "plate-like" else 2
    for k in range(n):
        vk = v0 - 0.04 * k + rng.normal(0, 0.01)
        if view == "frontal":
            lat = float(fr.lung_lateral(anat, side, vk))
            pts = np.array([[fr.side_x(anat, side, 0.3 * lat), vk - 0.01],
                            [fr.side_x(anat, side, 0.88 * lat), vk + 0.015]])
        else:
            a, p = la.anterior_border(anat), la.posterior_border(anat)
            pts = np.array([[a + 0.3 * (p - a), vk - 0.015], [a + 0.85 * (p - a), vk + 0.01]])
        c.polyline(pts, (0.01, 0.014, 0.018)[f.level - 1])
    layers.add_fill(side, 0.85 * blur(c.read(), 0.003))


def draw_lesion(layers: Layers, anat: Anatomy, f: Finding, view: str,
                rng: np.random.Generator) -> None:
    """A round nodule or a lobulated mass, denser than water-filled lung."""
    u, v = grid(layers.size)
    side = f.side or "right"
    cu, cv = _center(anat, f, side, view)
    r = 0.5 * f.params.get("size_cm", 2.0) * CM * 1.15
    if f.kind == "mass":
        blob = _patch(layers.size, rng, cu, cv, r * 1.2, 4, 0.006)
        blob = np.maximum(blob, soft_ellipse(u, v, cu, cv, r * 0.8, r * 0.8, 0.006))
    else:
        blob = soft_ellipse(u, v, cu, cv, r, r, 0.003)
    layers.add_fill(side, blob)
    layers.add += 0.05 * blob


def draw_pleural_other(layers: Layers, anat: Anatomy, f: Finding, view: str,
                       rng: np.random.Generator) -> None:
    """Pleural thickening or calcified plaques along the chest wall."""
    u, v = grid(layers.size)
    plaques = f.kind == "calcified pleural plaques"
    for side in f.sides():
        wall = _wall_distance(anat, side, view, u, v) if view == "frontal" else \
            la.posterior_border(anat) - u
        lung = layers.lungs[side]
        span = smooth(v - anat.v_apex - 0.15, 0.03) * smooth(anat.dome(side) - 0.02 - v, 0.03)
        thick = (0.014, 0.02, 0.028)[f.level - 1]
        band = smooth(thick - wall, 0.003) * span * lung
        if plaques:
            mottle = np.zeros_like(band)
            for _ in range(4 + 2 * f.level):
                pv = rng.uniform(anat.v_apex + 0.2, anat.dome(side) - 0.05)
                mottle = np.maximum(mottle, smooth(0.025 - np.abs(v - pv), 0.006))
            layers.add += 0.5 * band * mottle
            for _ in range(1 + f.level):   # en-face plaques: irregular "holly leaf" densities
                cu, cv = frontal_center(anat, f, side) if view == "frontal" else \
                    lateral_center(anat, f, side)
                cu += rng.normal(0, 0.04)
                cv += rng.normal(0, 0.08)
                leaf = _patch(layers.size, rng, cu, cv, 0.03 + 0.008 * f.level, 4, 0.004)
                layers.add += 0.12 * leaf * lung
        else:
            layers.add_fill(side, band)
            layers.add += 0.1 * band


def draw_nothing(layers: Layers, anat: Anatomy, f: Finding, view: str,
                 rng: np.random.Generator) -> None:
    """Findings drawn through the anatomy itself (heart, mediastinum, rib fracture)."""


DRAWERS: dict[str, Callable[[Layers, Anatomy, Finding, str, np.random.Generator], None]] = {
    "Consolidation": draw_airspace, "Pneumonia": draw_airspace, "Lung Opacity": draw_airspace,
    "Edema": draw_edema, "Pleural Effusion": draw_effusion, "Pneumothorax": draw_pneumothorax,
    "Atelectasis": draw_atelectasis, "Lung Lesion": draw_lesion,
    "Pleural Other": draw_pleural_other, "Cardiomegaly": draw_nothing,
    "Enlarged Cardiomediastinum": draw_nothing, "Fracture": draw_nothing,
}
