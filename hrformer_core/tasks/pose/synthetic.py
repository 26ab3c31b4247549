"""A procedural people dataset in the real COCO keypoints layout, for quick starts and tests.

Each 256x256 image shows 1-3 articulated figures (17 COCO keypoints) on a cluttered background. Left
and right are readable the way they are for real people, from which way a figure faces: facing the
camera it shows a face and a collar (its left side on the image right); facing away it shows the back
of the head (hair, no face; nose and eyes unlabelled) and its left side is on the image left; side
views show a profile, the far eye and ear unlabelled. Colours never encode sides. Visibility follows
COCO: 2 visible, 1 labelled but occluded, 0 unlabelled (also outside the image).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hrformer_core.errors import DataError
from hrformer_core.tasks.pose.keypoints import COCO17
from hrformer_core.utils.io import atomic_write, write_json

GENERATOR_VERSION = 1
MARKER_NAME = "synthetic_pose.json"
_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT

# Part ids painted into each figure's label canvas. L/R are the figure's own left/right.
(BG, TORSO, NECK, HEAD, HAIR, EAR_L, EAR_R, EYE, NOSE, MOUTH, COLLAR, BUTTON, BELT, DRESS,
 UPPER_ARM_L, FOREARM_L, HAND_L, UPPER_ARM_R, FOREARM_R, HAND_R,
 THIGH_L, SHIN_L, FOOT_L, THIGH_R, SHIN_R, FOOT_R) = range(26)  # fmt: skip
NUM_PARTS = 26

# Parts on which each keypoint counts as visible (COCO order).
_KEYPOINT_PARTS: tuple[frozenset[int], ...] = (
    frozenset({HEAD, NOSE}),
    frozenset({HEAD, EYE}),
    frozenset({HEAD, EYE}),
    frozenset({EAR_L, HEAD, HAIR}),
    frozenset({EAR_R, HEAD, HAIR}),
    frozenset({TORSO, NECK, COLLAR, BUTTON, UPPER_ARM_L}),
    frozenset({TORSO, NECK, COLLAR, BUTTON, UPPER_ARM_R}),
    frozenset({UPPER_ARM_L, FOREARM_L}),
    frozenset({UPPER_ARM_R, FOREARM_R}),
    frozenset({FOREARM_L, HAND_L}),
    frozenset({FOREARM_R, HAND_R}),
    frozenset({TORSO, BELT, DRESS, BUTTON, THIGH_L}),
    frozenset({TORSO, BELT, DRESS, BUTTON, THIGH_R}),
    frozenset({THIGH_L, SHIN_L}),
    frozenset({THIGH_R, SHIN_R}),
    frozenset({SHIN_L, FOOT_L}),
    frozenset({SHIN_R, FOOT_R}),
)
# In a side view the far shoulder and hip hide behind the torso: only their own limb shows them.
_FAR_SIDE_PARTS = {5: frozenset({UPPER_ARM_L}), 6: frozenset({UPPER_ARM_R}),
                   11: frozenset({THIGH_L}), 12: frozenset({THIGH_R})}  # fmt: skip

_SKIN = np.array([[255, 224, 196], [241, 194, 125], [224, 172, 105], [198, 134, 66], [161, 102, 55],
                  [120, 75, 45], [90, 56, 37]], dtype=np.float32)  # fmt: skip
_HAIR = np.array([[25, 20, 18], [60, 40, 28], [105, 70, 42], [190, 160, 95], [150, 145, 140],
                  [130, 55, 30], [45, 35, 30]], dtype=np.float32)  # fmt: skip


def _rot(v: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate a 2-D vector; positive angles turn +x toward +y (clockwise on screen, as OpenCV)."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return np.array([v[0] * c - v[1] * s, v[0] * s + v[1] * c])


def _angle(v: np.ndarray) -> float:
    return math.degrees(math.atan2(v[1], v[0]))


def _mix(rng: np.random.Generator, options: list[tuple[float, float, float]]) -> float:
    """Sample U(lo, hi) from one of the (probability, lo, hi) options."""
    probs = np.array([o[0] for o in options])
    _, lo, hi = options[rng.choice(len(options), p=probs / probs.sum())]
    return float(rng.uniform(lo, hi))


def _random_color(rng: np.random.Generator, saturation: tuple[float, float] = (0.2, 0.9)) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(40, 240)]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


@dataclass
class _Figure:
    """One figure in unit height (H = 1), origin at the neck; `ops` are drawing primitives in order."""

    keypoints: np.ndarray  # (17, 2)
    labelled: np.ndarray  # (17,) bool
    far_side: str | None  # 'left' / 'right' in side views
    ops: list[tuple[Any, ...]] = field(default_factory=list)

    def limb(self, part: int, p0: np.ndarray, p1: np.ndarray, w0: float, w1: float, style: str) -> None:
        """A body segment: tapered (quad + round ends), capsule, or ellipse."""
        if style == "ellipse":
            length = float(np.linalg.norm(p1 - p0))
            axes = (length * 0.5 + 0.35 * max(w0, w1), 0.5 * max(w0, w1))
            self.ops.append(("ellipse", part, (p0 + p1) * 0.5, axes, _angle(p1 - p0)))
            return
        if style == "capsule":
            w0 = w1 = 0.5 * (w0 + w1)
        d = p1 - p0
        n = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-9)
        quad = np.array([p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2, p0 - n * w0 / 2])
        self.ops.append(("poly", part, quad))
        self.ops.append(("circle", part, p0, w0 / 2))
        self.ops.append(("circle", part, p1, w1 / 2))

    def transform(self, scale: float, offset: np.ndarray) -> _Figure:
        """The figure scaled to `scale` pixels tall and moved by `offset` pixels."""
        ops = []
        for op in self.ops:
            kind, part = op[0], op[1]
            if kind == "poly":
                ops.append((kind, part, op[2] * scale + offset))
            elif kind == "circle":
                ops.append((kind, part, op[2] * scale + offset, op[3] * scale))
            else:  # ellipse or pie: center, axes, angle[, start, end]
                axes = (op[3][0] * scale, op[3][1] * scale)
                ops.append((kind, part, op[2] * scale + offset, axes, *op[4:]))
        return _Figure(self.keypoints * scale + offset, self.labelled.copy(), self.far_side, ops)


@dataclass
class _Look:
    """Clothing and colours of one figure."""

    sleeves: str  # 'long', 'short', 'none'
    legs: str  # 'long', 'shorts', 'dress'
    hair: str  # 'short', 'long', 'bald'
    limb_style: str
    leg_style: str
    belt: bool
    buttons: bool
    collar: str  # 'v', 'round'
    build: float
    thickness: float
    loose: float


def _sample_look(rng: np.random.Generator, view: str) -> _Look:
    legs = str(rng.choice(["long", "shorts", "dress"], p=[0.65, 0.2, 0.15]))
    hair = str(rng.choice(["short", "long", "bald"], p=[0.6, 0.33, 0.07]))
    if hair == "bald" and view != "front":
        hair = "short"
    return _Look(
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


def _sample_figure(rng: np.random.Generator) -> tuple[_Figure, _Look]:
    """A random plausible pose, seen from the front, the back or the side, with its drawing primitives."""
    view = str(rng.choice(["front", "back", "left", "right"], p=[0.42, 0.3, 0.14, 0.14]))
    look = _sample_look(rng, view)
    b, th = look.build, look.thickness
    g_angle = rng.normal(0, 4) if rng.random() > 0.05 else rng.uniform(-45, 45)
    t_angle = float(np.clip(rng.normal(0, 7), -20, 20)) if rng.random() > 0.1 else rng.uniform(-40, 40)
    down = _rot(np.array([0.0, 1.0]), g_angle)
    td, tr = _rot(down, t_angle), _rot(_rot(np.array([1.0, 0.0]), g_angle), t_angle)
    leg_down = _rot(down, 0.25 * t_angle)
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
        shoulder = {near: neck - fwd * ds, _other(near): neck + fwd * ds}
        hip_mid = neck + td * torso_len - fwd * 0.005
        hip = {near: hip_mid - fwd * dh, _other(near): hip_mid + fwd * dh}
    else:
        sw, hw = 0.105 * b, 0.072 * b
        shoulder = {s: neck + tr * sign[s] * sw for s in ("left", "right")}
        hip = {s: neck + td * torso_len + tr * sign[s] * hw for s in ("left", "right")}

    fig = _Figure(kp, labelled, _other(near) if side_view else None)
    head_angle = t_angle + g_angle + float(np.clip(rng.normal(0, 10), -30, 30))
    hd, hr = _rot(np.array([0.0, 1.0]), head_angle), _rot(np.array([1.0, 0.0]), head_angle)
    head_c = neck - hd * 0.105 + (fwd * 0.012 if side_view else 0.0)
    rx, ry = 0.05 * rng.uniform(0.92, 1.08), 0.066 * rng.uniform(0.95, 1.05)

    arms, legs = {}, {}
    for s in ("left", "right"):
        arms[s] = _arm(rng, shoulder[s], td, fwd if side_view else tr * sign[s], side_view)
        legs[s] = _leg(rng, hip[s], leg_down, fwd if side_view else tr * sign[s], side_view)
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
    draw_arm = {s: _arm_ops(fig, s, kp, width, look) for s in ("left", "right")}
    draw_leg = {s: _leg_ops(fig, s, kp, width, look, leg_down, fwd if side_view else None) for s in ("left", "right")}

    # Drawing order = depth order: what is drawn later covers what was drawn before.
    head = (head_c, hd, hr, rx, ry)
    if view == "front":  # arms in front of the torso
        if look.hair == "long":
            _long_hair(fig, head, behind=True)
        for draw in (draw_leg["left"], draw_leg["right"]):
            draw()
        _torso(fig, look, neck, td, tr, torso_len, side_view=False, front=True)
        _front_head(fig, look, kp, head, rng)
        for draw in (draw_arm["left"], draw_arm["right"]):
            draw()
    elif view == "back":  # arms (and hands in front of the body) behind the torso
        for draw in (draw_arm["left"], draw_arm["right"], draw_leg["left"], draw_leg["right"]):
            draw()
        _torso(fig, look, neck, td, tr, torso_len, side_view=False, front=False)
        _back_head(fig, kp, head)
        if look.hair == "long":
            _long_hair(fig, head, behind=False)
    else:  # far limbs behind the torso, near arm in front
        far = _other(near)
        for draw in (draw_arm[far], draw_leg[far], draw_leg[near]):
            draw()
        _torso(fig, look, neck, td, fwd, torso_len, side_view=True, front=False)
        _side_head(fig, look, kp, head, facing, near)
        draw_arm[near]()
    return fig, look


def _other(side: str) -> str:
    return "right" if side == "left" else "left"


def _arm(
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


def _leg(
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
        shin = _rot(thigh, bend + rng.uniform(-10, 10))
        thigh_len *= 1.0 - 0.45 * math.sin(math.radians(kappa)) * rng.uniform(0.5, 1.0)
        shin_len *= 1.0 - 0.15 * math.sin(math.radians(kappa))
    knee = hip + thigh * thigh_len
    return knee, knee + shin * shin_len


def _arm_ops(fig: _Figure, side: str, kp: np.ndarray, width: dict[str, float], look: _Look) -> Callable[[], None]:
    """A deferred drawing of one arm, so the caller can put it in front of or behind the torso."""
    i_sh, i_el, i_wr = (5, 7, 9) if side == "left" else (6, 8, 10)
    upper, fore, hand = (UPPER_ARM_L, FOREARM_L, HAND_L) if side == "left" else (UPPER_ARM_R, FOREARM_R, HAND_R)

    def draw() -> None:
        fig.limb(upper, kp[i_sh], kp[i_el], width["upper"], width["upper"] * 0.82, look.limb_style)
        fig.limb(fore, kp[i_el], kp[i_wr], width["fore"], width["fore"] * 0.78, look.limb_style)
        direction = kp[i_wr] - kp[i_el]
        direction = direction / max(float(np.linalg.norm(direction)), 1e-9)
        fig.ops.append(("ellipse", hand, kp[i_wr] + direction * 0.026, (0.03, 0.02), _angle(direction)))

    return draw


def _leg_ops(
    fig: _Figure,
    side: str,
    kp: np.ndarray,
    width: dict[str, float],
    look: _Look,
    down: np.ndarray,
    fwd: np.ndarray | None,
) -> Callable[[], None]:
    """A deferred drawing of one leg; `fwd` is the facing direction of a side view (None otherwise)."""
    i_hip, i_kn, i_an = (11, 13, 15) if side == "left" else (12, 14, 16)
    thigh, shin, foot = (THIGH_L, SHIN_L, FOOT_L) if side == "left" else (THIGH_R, SHIN_R, FOOT_R)

    def draw() -> None:
        fig.limb(thigh, kp[i_hip], kp[i_kn], width["thigh"], width["thigh"] * 0.68, look.leg_style)
        fig.limb(shin, kp[i_kn], kp[i_an], width["shin"], width["shin"] * 0.66, look.leg_style)
        if fwd is None:  # seen from the front or back: the foot is foreshortened
            fig.ops.append(("ellipse", foot, kp[i_an] + down * 0.022, (0.032, 0.022), _angle(down) + 90))
        else:  # in profile the foot points where the figure faces
            s = kp[i_an] - kp[i_kn]
            s = s / max(float(np.linalg.norm(s)), 1e-9)
            f = np.array([-s[1], s[0]])
            f = f if float(f @ fwd) > 0 else -f
            fig.limb(foot, kp[i_an] - f * 0.012 + s * 0.012, kp[i_an] + f * 0.07 + s * 0.024, 0.036, 0.026, "tapered")

    return draw


def _torso(
    fig: _Figure,
    look: _Look,
    neck: np.ndarray,
    td: np.ndarray,
    across: np.ndarray,
    length: float,
    side_view: bool,
    front: bool,
) -> None:
    """Neck, torso polygon, dress, belt and (front only) collar and buttons."""
    b = look.build

    def at(u: float, v: float) -> np.ndarray:
        return neck + across * u + td * v

    fig.limb(NECK, neck + td * 0.02, neck - td * 0.07, 0.05, 0.045, "capsule")
    if side_view:  # `across` is the facing direction: u > 0 is the chest side
        outline = [(-0.04, -0.01), (0.035, -0.01), (0.08 * b, 0.07), (0.082 * b, 0.12), (0.064 * b, 0.19),
                   (0.07 * b, length), (0.058 * b, length + 0.05), (-0.078 * b, length + 0.05),
                   (-0.09 * b, length - 0.01), (-0.064 * b, 0.19), (-0.074 * b, 0.07), (-0.055, 0.0)]  # fmt: skip
        dress = [(0.056 * b, 0.19), (0.075 * b, length), (0.13 * b, length + 0.2),
                 (-0.13 * b, length + 0.2), (-0.09 * b, length), (-0.056 * b, 0.19)]  # fmt: skip
    else:
        sw, hw = 0.105 * b, 0.072 * b
        half = [(0.06, -0.014), (sw + 0.018, -0.002), (sw + 0.032, 0.03), (sw + 0.008, 0.1), (0.088 * b, 0.19),
                (hw + 0.042, length), (hw + 0.036, length + 0.045), (0.0, length + 0.062)]  # fmt: skip
        outline = half + [(-u, v) for u, v in reversed(half[:-1])]
        dress = [(0.088 * b, 0.19), (hw + 0.05, length), (hw + 0.11, length + 0.22),
                 (-hw - 0.11, length + 0.22), (-hw - 0.05, length), (-0.088 * b, 0.19)]  # fmt: skip
    if look.legs == "dress":
        fig.ops.append(("poly", DRESS, np.array([at(u, v) for u, v in dress])))
    fig.ops.append(("poly", TORSO, np.array([at(u, v) for u, v in outline])))
    if look.belt:
        u = 0.07 * b if side_view else 0.075 * b + 0.045
        band = [(-u, length - 0.035), (u, length - 0.035), (u, length - 0.005), (-u, length - 0.005)]
        fig.ops.append(("poly", BELT, np.array([at(x, y) for x, y in band])))
    if not front:
        return
    if look.collar == "v":
        fig.ops.append(("poly", COLLAR, np.array([at(-0.05, -0.014), at(0.05, -0.014), at(0.0, 0.085)])))
        fig.ops.append(("poly", NECK, np.array([at(-0.032, -0.014), at(0.032, -0.014), at(0.0, 0.06)])))
    else:
        fig.ops.append(("ellipse", COLLAR, at(0.0, -0.006), (0.048, 0.03), _angle(across)))
        fig.ops.append(("ellipse", NECK, at(0.0, -0.01), (0.032, 0.02), _angle(across)))
    if look.buttons:
        for i in range(4):
            fig.ops.append(("circle", BUTTON, at(0.0, 0.09 + 0.045 * i), 0.0075))


def _long_hair(fig: _Figure, head: tuple, behind: bool) -> None:
    """Hair falling to the shoulders: behind the neck (front view) or over the upper back (back view)."""
    c, hd, hr, rx, ry = head
    top = c - hd * ry * 0.3
    quad = np.array([top + hr * rx * 1.05, top - hr * rx * 1.05,
                     c + hd * (0.15 if behind else 0.17) - hr * rx * 1.25,
                     c + hd * (0.15 if behind else 0.17) + hr * rx * 1.25])  # fmt: skip
    fig.ops.append(("poly", HAIR, quad))


def _front_head(fig: _Figure, look: _Look, kp: np.ndarray, head: tuple, rng: np.random.Generator) -> None:
    c, hd, hr, rx, ry = head
    angle = _angle(hr)
    for i, ear in ((3, EAR_L), (4, EAR_R)):
        fig.ops.append(("ellipse", ear, kp[i], (0.011, 0.017), angle))
    if look.hair != "bald":
        fig.ops.append(("ellipse", HAIR, c - hd * 0.012, (rx * 1.08, ry * 1.0), angle))
    face_top = rng.uniform(0.0, 0.012)
    fig.ops.append(("ellipse", HEAD, c + hd * (0.006 + face_top * 0.5), (rx, ry * (0.9 - face_top)), angle))
    for i in (1, 2):
        fig.ops.append(("circle", EYE, kp[i], 0.0075))
    fig.ops.append(("ellipse", NOSE, kp[0] - hd * 0.004, (0.0065, 0.0105), angle))
    fig.ops.append(("ellipse", MOUTH, kp[0] + hd * 0.021, (0.014, 0.0055), angle))


def _back_head(fig: _Figure, kp: np.ndarray, head: tuple) -> None:
    c, hd, hr, rx, ry = head
    angle = _angle(hr)
    for i, ear in ((3, EAR_L), (4, EAR_R)):
        fig.ops.append(("ellipse", ear, kp[i], (0.011, 0.017), angle))
    fig.ops.append(("ellipse", HAIR, c, (rx * 1.03, ry), angle))


def _side_head(fig: _Figure, look: _Look, kp: np.ndarray, head: tuple, facing: float, near: str) -> None:
    c, hd, hr, rx, ry = head
    angle = _angle(hr)
    hf = hr * facing
    fig.ops.append(("ellipse", HEAD, c, (rx * 1.05, ry), angle))
    tip = kp[0]
    fig.ops.append(("poly", NOSE, np.array([c + hf * 0.04 - hd * 0.012, tip, c + hf * 0.042 + hd * 0.02])))
    if look.hair != "bald":
        # Hair over the back and the top of the head: a pie slice facing away from the face.
        # Angles in the head frame: 0 = head's image right, 90 = down; the arc runs through the back.
        start, end = (90.0, 290.0) if facing > 0 else (-110.0, 90.0)
        fig.ops.append(("pie", HAIR, c - hd * 0.006, (rx * 1.1, ry * 1.04), angle, start, end))
        if look.hair == "long":
            back = c - hf * rx * 0.2
            fig.ops.append(("poly", HAIR, np.array([back - hd * 0.02, back - hf * rx * 1.05,
                                                    back - hf * rx * 1.1 + hd * 0.17,
                                                    back + hd * 0.16])))  # fmt: skip
    ear_index, ear_part = (3, EAR_L) if near == "left" else (4, EAR_R)
    eye_index = 1 if near == "left" else 2
    fig.ops.append(("ellipse", ear_part, kp[ear_index], (0.012, 0.018), angle))
    fig.ops.append(("circle", EYE, kp[eye_index], 0.0075))
    fig.ops.append(("ellipse", MOUTH, c + hf * 0.04 + hd * 0.034, (0.009, 0.004), angle))


def _person_palette(rng: np.random.Generator, look: _Look) -> tuple[np.ndarray, np.ndarray]:
    """Colour of every part id (with per-part brightness jitter) and which parts get the cloth texture."""
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.08, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.15)
    shirt = _random_color(rng)
    pants = (
        _random_color(rng, (0.1, 0.6))
        if rng.random() < 0.6
        else np.array([55, 75, 120], np.float32) * rng.uniform(0.7, 1.3)
    )
    shoes = _random_color(rng, (0.0, 0.5)) * 0.6
    colors = np.zeros((NUM_PARTS, 3), np.float32)
    colors[[HEAD, NECK, EAR_L, EAR_R, HAND_L, HAND_R]] = skin
    colors[HAIR] = hair
    colors[EYE] = (30, 25, 25)
    colors[NOSE] = skin * 0.82
    colors[MOUTH] = np.array([150, 60, 60], np.float32) * rng.uniform(0.7, 1.1)
    colors[[TORSO, DRESS]] = shirt
    colors[COLLAR] = _random_color(rng) if rng.random() < 0.5 else shirt * 0.7
    colors[BUTTON] = (240, 240, 230) if shirt.mean() < 128 else (30, 30, 35)
    colors[BELT] = np.array([60, 40, 25], np.float32) * rng.uniform(0.6, 1.4)
    sleeve = {"long": (shirt, shirt), "short": (shirt, skin), "none": (skin, skin)}[look.sleeves]
    colors[[UPPER_ARM_L, UPPER_ARM_R]], colors[[FOREARM_L, FOREARM_R]] = sleeve
    leg = {"long": (pants, pants), "shorts": (pants, skin), "dress": (skin, skin)}[look.legs]
    colors[[THIGH_L, THIGH_R]], colors[[SHIN_L, SHIN_R]] = leg
    colors[[FOOT_L, FOOT_R]] = shoes
    jitter = rng.uniform(0.88, 1.12, NUM_PARTS).astype(np.float32)
    jitter[[EYE, BUTTON]] = 1.0
    colors = np.clip(colors * jitter[:, None], 0, 255)
    cloth = np.zeros(NUM_PARTS, np.uint8)  # 1: shirt texture, 2: pants texture, 3: hair strands
    cloth[[TORSO, DRESS]] = 1
    if look.sleeves != "none":
        cloth[[UPPER_ARM_L, UPPER_ARM_R]] = 1
    if look.sleeves == "long":
        cloth[[FOREARM_L, FOREARM_R]] = 1
    if look.legs != "dress":
        cloth[[THIGH_L, THIGH_R]] = 2
        if look.legs == "long":
            cloth[[SHIN_L, SHIN_R]] = 2
    cloth[HAIR] = 3
    return colors, cloth


def _pattern(rng: np.random.Generator, kind: int, shape: tuple[int, int], pixels_per_unit: float) -> np.ndarray:
    """Multiplicative texture field: stripes, checks, noise or plain (hair: fine strands)."""
    h, w = shape
    ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
    if kind == 3:
        a = math.radians(rng.uniform(60, 120))
        period = max(2.0, 0.012 * pixels_per_unit)
        return 1.0 + 0.12 * np.sin((xs * math.cos(a) + ys * math.sin(a)) * (2 * math.pi / period))
    style = rng.choice(
        ["plain", "stripes", "checks", "noise"], p=[0.35, 0.3, 0.15, 0.2] if kind == 1 else [0.6, 0.1, 0.05, 0.25]
    )
    if style == "plain":
        return np.ones((h, w), np.float32)
    if style == "noise":
        return 1.0 + 0.09 * rng.standard_normal((h, w), dtype=np.float32)
    period = max(3.0, rng.uniform(0.02, 0.06) * pixels_per_unit)
    a = math.radians(rng.uniform(0, 180))
    amp = rng.uniform(0.2, 0.5) * (1 if rng.random() < 0.5 else -1)
    stripes = (np.floor((xs * math.cos(a) + ys * math.sin(a)) / period) % 2).astype(np.float32)
    if style == "checks":
        other = np.floor((-xs * math.sin(a) + ys * math.cos(a)) / period) % 2
        stripes = np.abs(stripes - other.astype(np.float32))
    return 1.0 - amp * stripes


def _draw_op(canvas: np.ndarray, op: tuple[Any, ...], origin: np.ndarray, value: Any) -> None:
    kind = op[0]

    def fixed(points: np.ndarray) -> np.ndarray:
        return np.round((np.asarray(points) - origin) * _ONE).astype(np.int32)

    if kind == "poly":
        cv2.fillPoly(canvas, [fixed(op[2])], value, cv2.LINE_8, _SHIFT)
    elif kind == "circle":
        center = tuple(int(v) for v in fixed(op[2]))
        cv2.circle(canvas, center, max(1, round(op[3] * _ONE)), value, -1, cv2.LINE_8, _SHIFT)
    else:
        center = tuple(int(v) for v in fixed(op[2]))
        axes = (max(1, round(op[3][0] * _ONE)), max(1, round(op[3][1] * _ONE)))
        start, end = (op[5], op[6]) if kind == "pie" else (0.0, 360.0)
        cv2.ellipse(canvas, center, axes, op[4], start, end, value, -1, cv2.LINE_8, _SHIFT)


@dataclass
class _Scene:
    image: np.ndarray  # uint8 (H, W, 3) RGB
    owner: np.ndarray  # int16 (H, W): figure index, -1 background, -2 foreground occluder
    part: np.ndarray  # uint8 (H, W)


def _paint_figure(
    scene: _Scene, fig: _Figure, index: int, rng: np.random.Generator, look: _Look, height: float
) -> tuple[list[float], int] | None:
    """Paint one figure over the scene; returns its full (amodal) mask box and pixel area, or None."""
    img_h, img_w = scene.owner.shape
    low = np.floor(fig.keypoints.min(axis=0) - 0.16 * height).astype(int)
    high = np.ceil(fig.keypoints.max(axis=0) + 0.16 * height).astype(int)
    x0, y0 = max(0, low[0]), max(0, low[1])
    x1, y1 = min(img_w, high[0]), min(img_h, high[1])
    if x1 <= x0 or y1 <= y0:
        return None
    origin = np.array([x0, y0], dtype=np.float64)
    ids = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for op in fig.ops:
        _draw_op(ids, op, origin, int(op[1]))
    mask = ids > 0
    area = int(mask.sum())
    if area == 0:
        return None
    colors, cloth = _person_palette(rng, look)
    shade = np.ones(ids.shape, np.float32)
    cloth_ids = cloth[ids]
    for kind in np.unique(cloth_ids[cloth_ids > 0]):
        shade = np.where(cloth_ids == kind, _pattern(rng, int(kind), ids.shape, height), shade)
    step_x = ids[:, 1:] != ids[:, :-1]
    step_y = ids[1:, :] != ids[:-1, :]
    edge = np.zeros_like(mask)
    edge[:, 1:] |= step_x
    edge[:, :-1] |= step_x
    edge[1:, :] |= step_y
    edge[:-1, :] |= step_y
    shade[edge] *= rng.uniform(0.5, 0.85)  # outlines between parts and around the figure
    color = np.clip(colors[ids] * shade[..., None], 0, 255).astype(np.uint8)
    np.copyto(scene.image[y0:y1, x0:x1], color, where=mask[..., None])
    np.copyto(scene.owner[y0:y1, x0:x1], np.int16(index), where=mask)
    np.copyto(scene.part[y0:y1, x0:x1], ids, where=mask)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = [float(x0 + cols[0]), float(y0 + rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]
    return box, area


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Gradient + low-frequency noise + random shapes + limb-like distractor strokes (uint8 RGB)."""
    gh, gw = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    a = rng.uniform(0, 2 * math.pi)
    t = np.arange(gw)[None, :] / (gw - 1) * math.cos(a) + np.arange(gh)[:, None] / (gh - 1) * math.sin(a)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    c1, c2 = _random_color(rng, (0.0, 0.7)), _random_color(rng, (0.0, 0.7))
    grid = c1 + (c2 - c1) * t[..., None] + rng.normal(0, rng.uniform(10, 40), (gh, gw, 3))
    image = cv2.resize(np.clip(grid, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    size = max(h, w)
    for _ in range(int(rng.integers(3, 11))):
        color = tuple(float(v) for v in _random_color(rng))
        thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 4))
        kind = rng.integers(4)
        p = rng.uniform(-0.1, 1.1, 2) * (w, h)
        r = rng.uniform(0.03, 0.25) * size
        if kind == 0:
            q = p + rng.uniform(-1, 1, 2) * r * 2
            cv2.rectangle(image, tuple(int(v) for v in p), tuple(int(v) for v in q), color, thick)
        elif kind == 1:
            cv2.circle(image, tuple(int(v) for v in p), int(r), color, thick)
        elif kind == 2:
            axes = (int(r), int(r * rng.uniform(0.2, 1.0)))
            cv2.ellipse(image, tuple(int(v) for v in p), axes, rng.uniform(0, 180), 0, 360, color, thick)
        else:
            pts = (p + rng.uniform(-1, 1, (int(rng.integers(3, 7)), 2)) * r).astype(np.int32)
            cv2.fillPoly(image, [pts], color)
    for _ in range(int(rng.integers(2, 7))):
        _distractor(image, rng, size)
    return image


def _distractor(image: np.ndarray, rng: np.random.Generator, size: int) -> None:
    """A limb-like chain of 2-3 tapered segments in skin or cloth colours."""
    h, w = image.shape[:2]
    color = _SKIN[rng.integers(len(_SKIN))] if rng.random() < 0.4 else _random_color(rng)
    p = rng.uniform(0, 1, 2) * (w, h)
    width = rng.uniform(0.015, 0.05) * size
    direction = rng.uniform(0, 360)
    for _ in range(int(rng.integers(2, 4))):
        q = p + _rot(np.array([1.0, 0.0]), direction) * rng.uniform(0.06, 0.2) * size
        end_width = width * rng.uniform(0.7, 1.0)
        d = q - p
        n = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-9)
        quad = np.array([p + n * width / 2, q + n * end_width / 2, q - n * end_width / 2, p - n * width / 2])
        shade = tuple(float(v) for v in np.clip(color * rng.uniform(0.85, 1.1), 0, 255))
        cv2.fillPoly(image, [np.round(quad * _ONE).astype(np.int32)], shade, cv2.LINE_8, _SHIFT)
        cv2.circle(image, tuple(int(v) for v in np.round(q * _ONE)), max(1, int(end_width / 2 * _ONE)), shade, -1,
                   cv2.LINE_8, _SHIFT)  # fmt: skip
        p, width = q, end_width
        direction += rng.uniform(-70, 70)


def _occluder(scene: _Scene, rng: np.random.Generator) -> None:
    """A foreground object (post, box or blob) in front of the people."""
    h, w = scene.owner.shape
    mask = np.zeros((h, w), np.uint8)
    if rng.random() < 0.5:
        x = rng.uniform(0, w)
        half = rng.uniform(0.02, 0.07) * w
        cv2.rectangle(mask, (int(x - half), -1), (int(x + half), h), 1, -1)
    else:
        center = (int(rng.uniform(0, w)), int(rng.uniform(0.3, 1.0) * h))
        axes = (int(rng.uniform(0.06, 0.2) * w), int(rng.uniform(0.05, 0.15) * h))
        cv2.ellipse(mask, center, axes, rng.uniform(0, 180), 0, 360, 1, -1)
    region = mask > 0
    color = _random_color(rng, (0.0, 0.6))
    shade = 1.0 + 0.1 * np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    scene.image[region] = np.clip(color * shade.repeat(h, axis=0), 0, 255)[region]
    scene.owner[region] = -2


def _visibility(scene: _Scene, fig: _Figure, index: int) -> np.ndarray:
    """COCO flags: 0 unlabelled or outside the image, 1 hidden, 2 visible on the figure's own part."""
    h, w = scene.owner.shape
    flags = np.zeros(17, dtype=np.int64)
    for k, (x, y) in enumerate(fig.keypoints):
        if not fig.labelled[k] or not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            continue
        allowed = _KEYPOINT_PARTS[k]
        if fig.far_side is not None and k in _FAR_SIDE_PARTS and _side_of(k) == fig.far_side:
            allowed = _FAR_SIDE_PARTS[k]
        px, py = int(round(x)), int(round(y))
        visible = scene.owner[py, px] == index and int(scene.part[py, px]) in allowed
        flags[k] = 2 if visible else 1
    return flags


def _side_of(k: int) -> str:
    return "left" if k % 2 == 1 else "right"


def render_image(
    rng: np.random.Generator, size_hw: tuple[int, int] = (256, 256)
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One synthetic RGB uint8 image and its people: dicts with `keypoints` (17, 3), `bbox`, `area`."""
    h, w = size_hw
    scene = _Scene(_background(rng, h, w), np.full((h, w), -1, np.int16), np.zeros((h, w), np.uint8))
    count = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    heights = np.sort(rng.uniform(0.35, 0.95 if count == 1 else 0.8, count) * h)
    placed: list[tuple[_Figure, list[float] | None, int]] = []
    boxes: list[np.ndarray] = []
    for index, height in enumerate(heights):
        fig, look = _sample_figure(rng)
        lo, hi = fig.keypoints.min(axis=0) * height, fig.keypoints.max(axis=0) * height
        lo, hi = lo - 0.08 * height, hi + 0.08 * height  # head top, hands and feet beyond the keypoints
        extent = hi - lo
        truncate = rng.random() < 0.2
        for _ in range(12):
            slack = extent * (0.4 if truncate else 0.0)
            span = np.array([w, h]) - extent + 2 * slack
            corner = rng.uniform(0, 1, 2) * np.maximum(span, 0) - slack + np.minimum(span, 0) * 0.5
            box = np.concatenate([corner, corner + extent])
            if all(_iou(box, other) < 0.45 for other in boxes):
                break
        boxes.append(box)
        moved = fig.transform(float(height), corner - lo)
        painted = _paint_figure(scene, moved, index, rng, look, float(height))
        placed.append((moved, *(painted or (None, 0))))
    if rng.random() < 0.15:
        _occluder(scene, rng)
    people = []
    for index, (fig, box, area) in enumerate(placed):
        if box is None:
            continue
        flags = _visibility(scene, fig, index)
        keypoints = np.concatenate([fig.keypoints, flags[:, None]], axis=1)
        keypoints[flags == 0, :2] = 0.0
        people.append({"keypoints": keypoints, "bbox": box, "area": float(area)})
    grain = np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w)
    amount = rng.uniform(0.03, 0.08)
    image = cv2.addWeighted(scene.image, 1.0, cv2.merge([grain, grain, grain]), amount, -127.5 * amount)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.4, 0.8))
    return image, people


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _detections(
    rng: np.random.Generator, image_id: int, people: list[dict[str, Any]], size_hw: tuple[int, int]
) -> list[dict[str, Any]]:
    """A detector's output: jittered boxes for most people, some duplicates, low-score false positives."""
    h, w = size_hw
    dets = []

    def add(box: np.ndarray, score: float) -> None:
        x0, y0 = np.clip(box[:2], 0, (w - 1, h - 1))
        x1, y1 = np.clip(box[:2] + box[2:], 0, (w, h))
        if x1 - x0 > 1 and y1 - y0 > 1:
            bbox = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
            dets.append({"image_id": image_id, "category_id": 1, "bbox": bbox, "score": round(score, 5)})

    for person in people:
        if rng.random() < 0.04:
            continue
        box = np.array(person["bbox"])
        jitter = rng.normal(0, 0.05, 4) * np.array([box[2], box[3], box[2], box[3]])
        add(box + jitter, float(rng.uniform(0.55, 1.0) if rng.random() < 0.85 else rng.uniform(0.2, 0.55)))
        if rng.random() < 0.2:
            jitter = rng.normal(0, 0.15, 4) * np.array([box[2], box[3], box[2], box[3]])
            add(box + jitter, float(rng.uniform(0.05, 0.4)))
    for _ in range(int(rng.poisson(0.8))):
        bh = rng.uniform(0.2, 0.8) * h
        bw = bh * rng.uniform(0.3, 0.8)
        add(np.array([rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh]), float(rng.uniform(0.01, 0.35)))
    return dets


def _split(
    out_dir: Path, split: str, count: int, seed: int, size_hw: tuple[int, int], first_id: int, with_dets: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    images, annotations, dets = [], [], []
    split_code = {"train": 0, "val": 1}[split]
    for i in range(count):
        image_id = first_id + i
        rng = np.random.default_rng([seed, split_code, i])
        image, people = render_image(rng, size_hw)
        file_name = f"{image_id:012d}.jpg"
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise DataError(f"{out_dir / f'{split}2017' / file_name}: JPEG encoding failed")
        atomic_write(out_dir / f"{split}2017" / file_name, lambda p, data=encoded: p.write_bytes(data.tobytes()))
        images.append({"id": image_id, "file_name": file_name, "width": size_hw[1], "height": size_hw[0]})
        for number, person in enumerate(people, start=1):
            kps = person["keypoints"]
            annotations.append({
                "id": image_id * 100 + number,
                "image_id": image_id,
                "category_id": 1,
                "bbox": [round(v, 2) for v in person["bbox"]],
                "area": person["area"],
                "iscrowd": 0,
                "keypoints": [round(float(v), 2) if j % 3 < 2 else int(v) for j, v in enumerate(kps.reshape(-1))],
                "num_keypoints": int(np.count_nonzero(kps[:, 2] > 0)),
            })  # fmt: skip
        if with_dets:
            dets.extend(_detections(np.random.default_rng([seed, 2, i]), image_id, people, size_hw))
    coco = {
        "info": {"description": "hrformer synthetic people", "version": GENERATOR_VERSION, "seed": seed},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [COCO17.to_coco_category()],
    }
    return coco, dets


def generate_synthetic_pose(
    out_dir: str | Path, num_train: int, num_val: int, seed: int = 0, image_size: tuple[int, int] = (256, 256)
) -> dict[str, Path]:
    """Write a COCO-format synthetic people set in the standard COCO layout; same seed, same bytes.

    `image_size` is (height, width). Returns the paths: root, train_ann, val_ann, train_images,
    val_images, val_detections.
    """
    if num_train < 0 or num_val < 0:
        raise DataError(f"synthetic set sizes must be >= 0, got num_train={num_train}, num_val={num_val}")
    out = Path(out_dir)
    size_hw = (int(image_size[0]), int(image_size[1]))
    paths = _layout(out)
    train, _ = _split(out, "train", num_train, seed, size_hw, 1, with_dets=False)
    val, dets = _split(out, "val", num_val, seed, size_hw, 1_000_001, with_dets=True)
    paths["train_images"].mkdir(parents=True, exist_ok=True)
    paths["val_images"].mkdir(parents=True, exist_ok=True)
    write_json(paths["train_ann"], train, indent=None)
    write_json(paths["val_ann"], val, indent=None)
    write_json(paths["val_detections"], dets, indent=None)
    return paths


def _layout(root: Path) -> dict[str, Path]:
    return {
        "root": root,
        "train_ann": root / "annotations" / "person_keypoints_train2017.json",
        "val_ann": root / "annotations" / "person_keypoints_val2017.json",
        "train_images": root / "train2017",
        "val_images": root / "val2017",
        "val_detections": root / "annotations" / "person_detection_results_val2017.json",
    }


def ensure_synthetic_pose(
    cache_dir: str | Path, num_train: int, num_val: int, seed: int = 0, image_size: tuple[int, int] = (256, 256)
) -> dict[str, Path]:
    """Generate the set once into `cache_dir` and reuse it while the parameters are the same.

    A marker file with the parameters is written last, so an interrupted generation is redone.
    """
    root = Path(cache_dir)
    params = {
        "version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "seed": int(seed),
        "image_size": [int(image_size[0]), int(image_size[1])],
    }
    marker = root / MARKER_NAME
    paths = _layout(root)
    if marker.is_file():
        try:
            current = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            current = None
        if current == params and all(p.exists() for p in paths.values()):
            return paths
        marker.unlink()
        for folder in (paths["train_images"], paths["val_images"]):
            if folder.is_dir():
                for old in folder.glob("*.jpg"):
                    old.unlink()
    generate_synthetic_pose(root, num_train, num_val, seed, image_size)
    write_json(marker, params)
    return paths
