"""The frontal (PA/AP) view: base anatomy layers.

Image left is the patient's right. ``side_x`` maps a distance from the midline on a
given side to the image ``u`` coordinate.
"""
from __future__ import annotations

import cv2
import numpy as np

from training.phantoms.anatomy import Anatomy
from training.phantoms.draw import Canvas, bezier, blur, grid, smooth, soft_ellipse
from training.phantoms.layers import Layers
from training.phantoms.vessels import vessel_tree

EDGE = 0.006


def side_sign(side: str) -> float:
    """-1 for the patient's right (image left), +1 for the left."""
    return -1.0 if side == "right" else 1.0


def side_x(anat: Anatomy, side: str, d: float | np.ndarray) -> float | np.ndarray:
    """Image ``u`` of a point ``d`` from the midline on ``side``."""
    return anat.cx + side_sign(side) * d


def costophrenic_v(anat: Anatomy, side: str) -> float:
    """Height of the lateral costophrenic angle."""
    return anat.dome(side) + anat.dome_depth


def lung_lateral(anat: Anatomy, side: str, v: np.ndarray | float) -> np.ndarray:
    """Distance of the lateral lung border from the midline at height ``v``."""
    w = anat.half_width
    c = 0.42 * w
    t = np.clip((np.asarray(v) - anat.v_apex) / (costophrenic_v(anat, side) - anat.v_apex), 0, 1)
    return c + (w - c) * np.sqrt(1.0 - (1.0 - t) ** 2)


def lung_medial(anat: Anatomy, side: str, v: np.ndarray | float) -> np.ndarray:
    """Distance of the medial lung border from the midline (mediastinum, then heart)."""
    w = anat.half_width
    c = 0.42 * w
    v = np.asarray(v)
    t = np.clip((v - anat.v_apex) / (costophrenic_v(anat, side) - anat.v_apex), 0, 1)
    r = np.clip((v - anat.v_apex - 0.24) / 0.1, 0, 1)
    m = anat.mediastinum * 0.95 + (0.035 - anat.mediastinum * 0.95) * r * r * (3 - 2 * r)
    return c - (c - m) * np.sqrt(1.0 - (1.0 - t) ** 2)


def diaphragm_v(anat: Anatomy, side: str, d: np.ndarray) -> np.ndarray:
    """Height of the hemidiaphragm at distance ``d`` from the midline."""
    w = anat.half_width
    peak = 0.45 * w
    lateral = anat.dome_depth * ((d - peak) / (w - peak)) ** 2
    medial = 0.02 * ((peak - d) / peak) ** 2
    return anat.dome(side) + np.where(d > peak, lateral, medial)


def lung_sd(anat: Anatomy, side: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance to one lung field (positive inside)."""
    d = (u - anat.cx) * side_sign(side)
    s = np.minimum(lung_lateral(anat, side, v) - d, d - lung_medial(anat, side, v))
    s = np.minimum(s, diaphragm_v(anat, side, d) - v)
    return np.minimum(s, (v - anat.v_apex) * 0.7)


def shoulder_v(anat: Anatomy, d: np.ndarray) -> np.ndarray:
    """Top of the soft tissue: neck in the middle, trapezius sloping to the shoulders."""
    t = np.clip((d - 0.08) / 0.36, 0, 1)
    return np.where(d < 0.08, -1.0, anat.v_apex - 0.13 + 0.12 * np.sqrt(t))


def _body(anat: Anatomy, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    d = np.abs(u - anat.cx)
    torso = anat.half_width + anat.body_margin + 0.012 * np.sin(np.pi * np.clip(v, 0, 1))
    body = np.sqrt(np.clip(1.0 - (d / torso) ** 2, 0, 1)) ** 0.8
    body = body * smooth(v - shoulder_v(anat, d), 0.01)
    neck = np.sqrt(np.clip(1.0 - (d / 0.085) ** 2, 0, 1))
    body = np.maximum(body, 0.9 * neck)
    for s in ("right", "left"):   # upper arms beside the chest
        arm_u = side_x(anat, s, anat.half_width + anat.body_margin + 0.09)
        arm = np.sqrt(np.clip(1.0 - ((u - arm_u) / 0.08) ** 2, 0, 1))
        body = np.maximum(body, 0.6 * arm * smooth(v - anat.v_apex + 0.02, 0.02))
    if anat.breasts:   # density over the lower zones, sharp inferior border, fading upwards
        cv, b = anat.v_dome - 0.05, 0.12
        fade = np.clip((v - (cv - b)) / (1.5 * b), 0, 1)
        inside = smooth(torso - d, 0.01)
        for s in ("right", "left"):
            body = body + 0.12 * soft_ellipse(u, v, side_x(anat, s, 0.6 * anat.half_width), cv,
                                              0.17, b, 0.012) * fade * inside
    return body.astype(np.float32)


def heart_outline(anat: Anatomy) -> np.ndarray:
    """Cardiac silhouette as a closed polygon (right border: SVC/right atrium; left border:
    pulmonary trunk, left atrial appendage, left ventricle down to the apex).

    Its width is ``ctr`` times the thoracic width, split about 1:2 right:left of midline.
    """
    wh = anat.ctr * 2 * anat.half_width
    r_right, r_left = 0.32 * wh, 0.68 * wh
    dome, top = anat.dome_right, anat.dome_right - anat.heart_height
    x = lambda d: anat.cx + d  # noqa: E731  (d < 0 is the patient's right)
    med = anat.mediastinum
    right = bezier([(x(-0.8 * med), top - 0.04), (x(-0.8 * med), top + 0.03),
                    (x(-r_right - 0.012), top + 0.05), (x(-r_right - 0.005), dome - 0.02),
                    (x(-r_right + 0.02), dome + 0.01)], 30)
    bottom = np.array([[x(-r_right + 0.02), dome + 0.05], [x(r_left - 0.04), dome + 0.06]])
    left = bezier([(x(r_left - 0.04), dome + 0.02), (x(r_left + 0.01), dome - 0.01),
                   (x(r_left + 0.012), top + 0.02), (x(0.55 * r_left), top - 0.03),
                   (x(med + 0.004), top - 0.05)], 30)
    trunk = bezier([(x(med + 0.004), top - 0.05), (x(med + 0.015), top - 0.09),
                    (x(med), anat.v_apex + 0.17)], 10)
    return np.vstack([right, bottom, left, trunk])


def _heart(anat: Anatomy, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    size = u.shape[0]
    c = Canvas(size)
    c.polygon(heart_outline(anat))
    mask = c.read()
    depth = cv2.distanceTransform((mask > 0.5).astype(np.uint8), cv2.DIST_L2, 3) / size
    thick = np.sqrt(np.clip(depth / 0.05, 0, 1))
    heart = blur(mask * (0.55 + 0.45 * thick), 0.0025)
    above = smooth(diaphragm_v(anat, "left", np.abs(u - anat.cx)) + 0.01 - v, 0.015)
    return (heart * above).astype(np.float32)


def _mediastinum(anat: Anatomy, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    du = u - anat.cx
    narrow = np.clip((v - anat.v_apex) / 0.1, 0, 1) * 0.2 + 0.8
    right, left = anat.mediastinum * 0.9 * narrow, anat.mediastinum * narrow
    band = smooth(np.minimum(right + du, left - du), 0.01)
    pos = np.clip((du + right) / (right + left), 0, 1)
    band = band * np.sqrt(np.clip(1 - (2 * pos - 1) ** 2, 0, 1)) ** 0.5
    band = band * smooth(anat.dome_right + 0.02 - v, EDGE) * smooth(v - anat.v_apex + 0.06, 0.05)
    knob = soft_ellipse(u, v, anat.cx + anat.mediastinum * 0.95, anat.v_apex + 0.135,
                        anat.knob, anat.knob * 1.1, EDGE)
    hila = sum(soft_ellipse(u, v, side_x(anat, s, 0.1), anat.v_apex + (0.25 if s == "right" else 0.23),
                            0.03, 0.05, 0.02) for s in ("right", "left"))
    return np.maximum(band, knob) + 0.35 * hila


def _airways(anat: Anatomy, size: int) -> np.ndarray:
    c = Canvas(size)
    carina = anat.v_apex + 0.17
    c.polyline(np.array([[anat.cx, 0.0], [anat.cx + 0.004, carina]]), 0.026)
    for s in ("right", "left"):
        steep = 0.05 if s == "right" else 0.035
        c.polyline(np.array([[anat.cx, carina],
                             [side_x(anat, s, 0.045), carina + steep]]), 0.018)
    return blur(c.read(), 0.003)


def _rib_curves(anat: Anatomy, side: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Posterior and anterior centre lines of rib ``k`` (1-based) on one side."""
    v0 = anat.v_apex - 0.005 + anat.rib_spacing * (k - 1) * (1 + 0.035 * (k - 1))
    lat = float(lung_lateral(anat, side, v0 + 0.06)) + 0.012
    xs = lambda d: side_x(anat, side, d)  # noqa: E731
    post = bezier([(xs(0.03), v0), (xs(0.4 * lat), v0 - 0.018), (xs(0.85 * lat), v0 - 0.005),
                   (xs(lat + 0.012), v0 + 0.04), (xs(lat), v0 + 0.085)], 40)
    ant = bezier([(xs(lat), v0 + 0.085), (xs(0.75 * lat), v0 + 0.1),
                  (xs(0.3 * lat + 0.03), v0 + 0.16)], 24)
    return post, ant


def _fractured(rib: np.ndarray, fracture: dict) -> tuple[np.ndarray, np.ndarray]:
    """Split a rib centre line at the break: a gap, a step and a slight angulation."""
    cut = int(len(rib) * fracture.get("at", 0.72))
    pivot = rib[cut]
    angle = np.deg2rad(fracture.get("angle", 8.0))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    outer = (rib[cut + 2:] - pivot) @ rot.T + pivot + np.array([0.0, fracture.get("step", 0.01)])
    return rib[: cut - 1], outer


def _rib_image(mask: np.ndarray) -> np.ndarray:
    """Bone with a brighter cortical rim about 0.3 % of the image size thick."""
    k = max(3, 2 * int(round(mask.shape[0] * 0.0015)) + 1)
    rim = mask - cv2.erode(mask, np.ones((k, k), np.uint8))
    return 0.55 * blur(mask, 0.002) + 0.6 * blur(np.clip(rim, 0, 1), 0.0008)


def _bones(anat: Anatomy, size: int, u: np.ndarray, v: np.ndarray,
           fracture: dict | None) -> np.ndarray:
    post, ant, clav = Canvas(size), Canvas(size), Canvas(size)
    w = anat.rib_width
    for side in ("right", "left"):
        for k in range(1, 11):
            p, a = _rib_curves(anat, side, k)
            if fracture and fracture["side"] == side and fracture["rib"] == k:
                inner, outer = _fractured(p, fracture)
                post.polyline(inner, w)
                post.polyline(outer, w)
            else:
                post.polyline(p, w)
            if k <= 8:
                ant.polyline(a, w * 1.15)
        v_cl = anat.v_apex + (0.02 if anat.projection == "AP" else 0.05)
        xs = lambda d: side_x(anat, side, d)  # noqa: E731
        clav.polyline(bezier([(xs(0.035), v_cl + 0.035), (xs(0.15), v_cl + 0.01),
                              (xs(0.26), v_cl - 0.03), (xs(0.36), v_cl - 0.02)], 30), 0.024)
        if anat.projection == "AP":   # scapulae project over the upper lateral lungs
            hw = anat.half_width
            clav.polyline(bezier([(xs(hw * 0.95), anat.v_apex + 0.02),
                                  (xs(hw * 0.72), anat.v_apex + 0.12),
                                  (xs(hw * 0.8), anat.v_apex + 0.3)], 24), 0.006, 0.6)
        head = anat.half_width + anat.body_margin + 0.07
        clav.ellipse(xs(head), anat.v_apex + 0.01, 0.05, 0.055)
        clav.polyline(np.array([[xs(head), anat.v_apex + 0.05], [xs(head + 0.01), 0.5]]), 0.06)
    bone = 0.13 * _rib_image(post.read()) + 0.055 * _rib_image(ant.read())
    bone = bone + 0.16 * _rib_image(clav.read())
    return bone + _spine(anat, size, u, v)


def _spine(anat: Anatomy, size: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    du = np.abs(u - anat.cx)
    column = smooth(0.032 - du, 0.004)
    h = 0.042
    phase = np.mod((v - anat.v_apex + 0.02) / (h * (1 + 0.35 * v)), 1.0)
    bodies = smooth(0.42 - np.abs(phase - 0.5), 0.04)
    c = Canvas(size)
    vv = anat.v_apex - 0.04
    while vv < 1.0:
        hh = h * (1 + 0.35 * vv)
        for s in (-1, 1):
            c.ellipse(anat.cx + s * 0.024, vv + 0.35 * hh, 0.006, 0.01)
        c.ellipse(anat.cx, vv + 0.7 * hh, 0.005, 0.012)
        vv += hh
    pedicles = _rib_image(c.read())
    return (0.07 * column * (0.7 + 0.3 * bodies) + 0.05 * pedicles).astype(np.float32)


def frontal_layers(anat: Anatomy, size: int, fracture: dict | None = None) -> Layers:
    """Base layers of the frontal view for this anatomy."""
    u, v = grid(size)
    lungs, depth, vessels = {}, {}, {}
    rng = np.random.default_rng(anat.vessel_seed)
    for side in ("right", "left"):
        lungs[side] = smooth(lung_sd(anat, side, u, v), EDGE)
        t = np.clip((v - anat.v_apex) / (anat.dome(side) - anat.v_apex), 0, 1)
        depth[side] = (0.72 + 0.28 * t).astype(np.float32)
        hv = anat.v_apex + 0.25
        s = side_sign(side)
        angles = [np.arctan2(dy, s * dx) for dx, dy in
                  ((0.15, -1.0), (0.5, -0.9), (0.9, -0.6), (1.0, -0.15), (1.0, 0.25),
                   (0.8, 0.65), (0.45, 0.95), (0.1, 1.0))]
        vessels[side] = vessel_tree(size, rng, (side_x(anat, side, 0.09), hv), angles,
                                    anat.half_width * 1.0)
    airway = _airways(anat, size)
    body = _body(anat, u, v) - 0.2 * airway
    stomach = soft_ellipse(u, v, side_x(anat, "left", 0.45 * anat.half_width),
                           anat.dome_left + 0.06, 0.06, 0.035, 0.01)
    body = body - 0.25 * stomach
    return Layers(size=size, body=body, lungs=lungs, lung_depth=depth,
                  heart=_heart(anat, u, v), mediastinum=_mediastinum(anat, u, v),
                  bone=_bones(anat, size, u, v, fracture), vessels=vessels)


def unfractured_bone(anat: Anatomy, size: int) -> np.ndarray:
    """The frontal bone layer without a fracture (what a fracture's region is measured against)."""
    u, v = grid(size)
    return _bones(anat, size, u, v, None)
