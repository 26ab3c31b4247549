"""Random poses: where a figure's joints go, seen from the front, the back or the side.

`sample_figure` draws the view, the look and the joint angles, then builds the body shapes (`shapes`)
in depth order. Left and right follow the facing direction: facing the camera the figure's left is on
the image right; from the back it is on the image left; in side views the far eye and ear are unlabelled.
"""

from __future__ import annotations

import math

import numpy as np

from . import shapes
from .body import Figure, Look, other_side
from .primitives import rotate


def _mix(rng: np.random.Generator, options: list[tuple[float, float, float]]) -> float:
    """Sample U(lo, hi) from one of the (probability, lo, hi) options."""
    probs = np.array([o[0] for o in options])
    _, lo, hi = options[rng.choice(len(options), p=probs / probs.sum())]
    return float(rng.uniform(lo, hi))


def sample_look(rng: np.random.Generator, view: str) -> Look:
    """Clothing, drawing styles and proportions of one figure; only figures facing the camera may be bald."""
    legs = str(rng.choice(["long", "shorts", "dress"], p=[0.65, 0.2, 0.15]))
    hair = str(rng.choice(["short", "long", "bald"], p=[0.6, 0.33, 0.07]))
    if hair == "bald" and view != "front":
        hair = "short"
    return Look(
        sleeves=str(rng.choice(["long", "short", "none"], p=[0.5, 0.38, 0.12])),
        legs=legs,
        hair=hair,
        limb_style=str(rng.choice(["tapered", "capsule", "ellipse"], p=[0.55, 0.25, 0.2])),
        leg_style=str(rng.choice(["tapered", "capsule", "ellipse"], p=[0.6, 0.25, 0.15])),
        belt=bool(rng.random() < 0.3) and legs != "dress",
        buttons=bool(rng.random() < 0.6),
        collar=str(rng.choice(["v", "round"])),
        build=float(rng.uniform(0.88, 1.22)),
        thickness=float(rng.uniform(1.15, 1.55)),
        loose=float(rng.uniform(1.0, 1.3)),
    )


def sample_figure(rng: np.random.Generator) -> tuple[Figure, Look]:
    """A random plausible pose, seen from the front, the back or the side, with its drawing primitives."""
    view = str(rng.choice(["front", "back", "left", "right"], p=[0.42, 0.3, 0.14, 0.14]))
    look = sample_look(rng, view)
    b, th = look.build, look.thickness
    g_angle = rng.normal(0, 4) if rng.random() > 0.05 else rng.uniform(-45, 45)
    t_angle = float(np.clip(rng.normal(0, 7), -20, 20)) if rng.random() > 0.1 else rng.uniform(-40, 40)
    down = rotate(np.array([0.0, 1.0]), g_angle)
    td, tr = rotate(down, t_angle), rotate(rotate(np.array([1.0, 0.0]), g_angle), t_angle)
    leg_down = rotate(down, 0.25 * t_angle)
    neck = np.zeros(2)
    torso_len = 0.29 * rng.uniform(0.93, 1.07)
    side_view = view in ("left", "right")
    facing = -1.0 if view == "left" else 1.0
    fwd = tr * facing
    near = "left" if view == "left" else "right"
    # Image direction of each of the figure's sides (front: its left is on the image right).
    sign = {"left": 1.0, "right": -1.0} if view == "front" else {"left": -1.0, "right": 1.0}

    kp = np.zeros((17, 2))
    labelled = np.ones(17, dtype=bool)
    if side_view:
        ds, dh = rng.uniform(0, 0.03), rng.uniform(0, 0.03)
        shoulder = {near: neck - fwd * ds, other_side(near): neck + fwd * ds}
        hip_mid = neck + td * torso_len - fwd * 0.005
        hip = {near: hip_mid - fwd * dh, other_side(near): hip_mid + fwd * dh}
    else:
        sw, hw = 0.105 * b, 0.072 * b
        shoulder = {s: neck + tr * sign[s] * sw for s in ("left", "right")}
        hip = {s: neck + td * torso_len + tr * sign[s] * hw for s in ("left", "right")}

    fig = Figure(kp, labelled, other_side(near) if side_view else None)
    head_angle = t_angle + g_angle + float(np.clip(rng.normal(0, 10), -30, 30))
    hd, hr = rotate(np.array([0.0, 1.0]), head_angle), rotate(np.array([1.0, 0.0]), head_angle)
    head_c = neck - hd * 0.105 + (fwd * 0.012 if side_view else 0.0)
    rx, ry = 0.05 * rng.uniform(0.92, 1.08), 0.066 * rng.uniform(0.95, 1.05)

    arms, legs = {}, {}
    for s in ("left", "right"):
        arms[s] = _sample_arm(rng, shoulder[s], td, fwd if side_view else tr * sign[s], side_view)
        legs[s] = _sample_leg(rng, hip[s], leg_down, fwd if side_view else tr * sign[s], side_view)
    for s, (i_sh, i_el, i_wr, i_hip, i_kn, i_an) in {
        "left": (5, 7, 9, 11, 13, 15),
        "right": (6, 8, 10, 12, 14, 16),
    }.items():
        kp[i_sh], kp[i_el], kp[i_wr] = shoulder[s], arms[s][0], arms[s][1]
        kp[i_hip], kp[i_kn], kp[i_an] = hip[s], legs[s][0], legs[s][1]

    # Head keypoints in the head frame (hr: head's image right, hd: head down).
    if view == "front":
        yaw = float(np.clip(rng.normal(0, 0.006), -0.012, 0.012))
        kp[0] = head_c + hd * 0.014 + hr * yaw
        kp[1], kp[2] = (head_c + hr * (sign[s] * 0.021 + yaw) - hd * 0.008 for s in ("left", "right"))
        kp[3], kp[4] = (head_c + hr * sign[s] * 0.049 + hd * 0.004 for s in ("left", "right"))
    elif view == "back":
        kp[3], kp[4] = (head_c + hr * sign[s] * 0.049 + hd * 0.004 for s in ("left", "right"))
        labelled[[0, 1, 2]] = False
    else:
        hf = hr * facing
        kp[0] = head_c + hf * 0.056 + hd * 0.012
        near_eye, near_ear = (1, 3) if near == "left" else (2, 4)
        kp[near_eye] = head_c + hf * 0.031 - hd * 0.008
        kp[near_ear] = head_c - hf * 0.008 + hd * 0.004
        labelled[[3 - near_eye, 7 - near_ear]] = False

    width = {
        "upper": 0.068 * th * (look.loose if look.sleeves == "long" else 1.0),
        "fore": 0.056 * th,
        "thigh": 0.112 * th * (look.loose if look.legs == "long" else 1.0),
        "shin": 0.076 * th * (look.loose if look.legs == "long" else 1.0),
    }
    draw_arm = {s: shapes.arm(fig, s, kp, width, look) for s in ("left", "right")}
    leg_fwd = fwd if side_view else None
    draw_leg = {s: shapes.leg(fig, s, kp, width, look, leg_down, leg_fwd) for s in ("left", "right")}

    # Drawing order = depth order: what is drawn later covers what was drawn before.
    head = (head_c, hd, hr, rx, ry)
    if view == "front":  # arms in front of the torso
        if look.hair == "long":
            shapes.long_hair(fig, head, behind=True)
        for draw in (draw_leg["left"], draw_leg["right"]):
            draw()
        shapes.torso(fig, look, neck, td, tr, torso_len, side_view=False, front=True)
        shapes.front_head(fig, look, kp, head, rng)
        for draw in (draw_arm["left"], draw_arm["right"]):
            draw()
    elif view == "back":  # arms (and hands in front of the body) behind the torso
        for draw in (draw_arm["left"], draw_arm["right"], draw_leg["left"], draw_leg["right"]):
            draw()
        shapes.torso(fig, look, neck, td, tr, torso_len, side_view=False, front=False)
        shapes.back_head(fig, kp, head)
        if look.hair == "long":
            shapes.long_hair(fig, head, behind=False)
    else:  # far limbs behind the torso, near arm in front
        far = other_side(near)
        for draw in (draw_arm[far], draw_leg[far], draw_leg[near]):
            draw()
        shapes.torso(fig, look, neck, td, fwd, torso_len, side_view=True, front=False)
        shapes.side_head(fig, look, kp, head, facing, near)
        draw_arm[near]()
    return fig, look


def _sample_arm(
    rng: np.random.Generator, shoulder: np.ndarray, td: np.ndarray, out: np.ndarray, side_view: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist. `out` is the arm's outward (front/back view) or forward (side view) direction."""
    upper_len = 0.165 * rng.uniform(0.93, 1.06) * (rng.uniform(0.55, 1.0) if rng.random() < 0.3 else 1.0)
    fore_len = 0.15 * rng.uniform(0.93, 1.06)
    if side_view:
        theta = _mix(rng, [(0.65, -30, 30), (0.2, 30, 100), (0.15, -50, -30)])
        psi = _mix(rng, [(0.3, 0, 15), (0.7, 15, 140)])
        sin, cos = math.sin(math.radians(theta)), math.cos(math.radians(theta))
        upper = td * cos + out * sin
        bend = -td * sin + out * cos  # rotating the forearm forward / up
    else:
        theta = _mix(rng, [(0.45, 2, 18), (0.2, 18, 40), (0.2, 40, 160), (0.15, -30, 2)])
        # Hanging arms flex inward (hand toward the chest); raised arms wave up or droop.
        psi = _mix(rng, [(0.45, -15, 20), (0.55, 20, 145)]) if theta < 50 else rng.uniform(-120, 60)
        sin, cos = math.sin(math.radians(theta)), math.cos(math.radians(theta))
        upper = td * cos + out * sin
        bend = td * sin - out * cos  # rotating the forearm inward (toward the body's midline)
    if abs(psi) > 20:
        fore_len *= rng.uniform(0.6, 1.0)
    p = math.radians(psi)
    fore = upper * math.cos(p) + bend * math.sin(p)
    elbow = shoulder + upper * upper_len
    return elbow, elbow + fore * fore_len


def _sample_leg(
    rng: np.random.Generator, hip: np.ndarray, down: np.ndarray, out: np.ndarray, side_view: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Knee and ankle; in side views the knee bends backward, away from `out` (forward)."""
    thigh_len, shin_len = 0.245 * rng.uniform(0.94, 1.06), 0.245 * rng.uniform(0.94, 1.06)
    if side_view:
        theta = _mix(rng, [(0.6, -20, 20), (0.25, 20, 90), (0.15, -35, -20)])
        kappa = _mix(rng, [(0.4, 0, 15), (0.6, 15, 115)])
        sin, cos = math.sin(math.radians(theta)), math.cos(math.radians(theta))
        thigh = down * cos + out * sin
        back = down * sin - out * cos
        k = math.radians(kappa)
        shin = thigh * math.cos(k) + back * math.sin(k)
    else:
        theta = _mix(rng, [(0.65, -4, 8), (0.27, 8, 20), (0.08, 20, 70)])
        kappa = _mix(rng, [(0.7, 0, 15), (0.3, 15, 100)])
        sin, cos = math.sin(math.radians(theta)), math.cos(math.radians(theta))
        thigh = down * cos + out * sin
        bend = kappa * 0.3 * (1 if rng.random() < 0.5 else -1)
        shin = rotate(thigh, bend + rng.uniform(-10, 10))
        thigh_len *= 1.0 - 0.45 * math.sin(math.radians(kappa)) * rng.uniform(0.5, 1.0)
        shin_len *= 1.0 - 0.15 * math.sin(math.radians(kappa))
    knee = hip + thigh * thigh_len
    return knee, knee + shin * shin_len
