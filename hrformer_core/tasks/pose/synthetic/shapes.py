"""The body shapes drawn around a figure's joints: limbs, hands and feet, torso and clothes, heads and hair.

Each function appends drawing primitives to `Figure.ops` in unit height; the caller orders the calls by depth.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .body import (
    BELT,
    BUTTON,
    COLLAR,
    DRESS,
    EAR_L,
    EAR_R,
    EYE,
    FOOT_L,
    FOOT_R,
    FOREARM_L,
    FOREARM_R,
    HAIR,
    HAND_L,
    HAND_R,
    HEAD,
    MOUTH,
    NECK,
    NOSE,
    SHIN_L,
    SHIN_R,
    THIGH_L,
    THIGH_R,
    TORSO,
    UPPER_ARM_L,
    UPPER_ARM_R,
    Figure,
    Look,
)
from .primitives import angle_of


def arm(fig: Figure, side: str, kp: np.ndarray, width: dict[str, float], look: Look) -> Callable[[], None]:
    """A deferred drawing of one arm, so the caller can put it in front of or behind the torso."""
    i_sh, i_el, i_wr = (5, 7, 9) if side == "left" else (6, 8, 10)
    upper, fore, hand = (UPPER_ARM_L, FOREARM_L, HAND_L) if side == "left" else (UPPER_ARM_R, FOREARM_R, HAND_R)

    def draw() -> None:
        fig.limb(upper, kp[i_sh], kp[i_el], width["upper"], width["upper"] * 0.82, look.limb_style)
        fig.limb(fore, kp[i_el], kp[i_wr], width["fore"], width["fore"] * 0.78, look.limb_style)
        direction = kp[i_wr] - kp[i_el]
        direction = direction / max(float(np.linalg.norm(direction)), 1e-9)
        fig.ops.append(("ellipse", hand, kp[i_wr] + direction * 0.026, (0.03, 0.02), angle_of(direction)))

    return draw


def leg(
    fig: Figure,
    side: str,
    kp: np.ndarray,
    width: dict[str, float],
    look: Look,
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
            fig.ops.append(("ellipse", foot, kp[i_an] + down * 0.022, (0.032, 0.022), angle_of(down) + 90))
        else:  # in profile the foot points where the figure faces
            s = kp[i_an] - kp[i_kn]
            s = s / max(float(np.linalg.norm(s)), 1e-9)
            f = np.array([-s[1], s[0]])
            f = f if float(f @ fwd) > 0 else -f
            fig.limb(foot, kp[i_an] - f * 0.012 + s * 0.012, kp[i_an] + f * 0.07 + s * 0.024, 0.036, 0.026, "tapered")

    return draw


def torso(
    fig: Figure,
    look: Look,
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
        fig.ops.append(("ellipse", COLLAR, at(0.0, -0.006), (0.048, 0.03), angle_of(across)))
        fig.ops.append(("ellipse", NECK, at(0.0, -0.01), (0.032, 0.02), angle_of(across)))
    if look.buttons:
        for i in range(4):
            fig.ops.append(("circle", BUTTON, at(0.0, 0.09 + 0.045 * i), 0.0075))


def long_hair(fig: Figure, head: tuple, behind: bool) -> None:
    """Hair falling to the shoulders: behind the neck (front view) or over the upper back (back view)."""
    c, hd, hr, rx, ry = head
    top = c - hd * ry * 0.3
    quad = np.array([top + hr * rx * 1.05, top - hr * rx * 1.05,
                     c + hd * (0.15 if behind else 0.17) - hr * rx * 1.25,
                     c + hd * (0.15 if behind else 0.17) + hr * rx * 1.25])  # fmt: skip
    fig.ops.append(("poly", HAIR, quad))


def front_head(fig: Figure, look: Look, kp: np.ndarray, head: tuple, rng: np.random.Generator) -> None:
    """Ears, hair, face (eyes, nose, mouth) of a figure facing the camera."""
    c, hd, hr, rx, ry = head
    angle = angle_of(hr)
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


def back_head(fig: Figure, kp: np.ndarray, head: tuple) -> None:
    """Ears and the back of the head (hair, no face)."""
    c, hd, hr, rx, ry = head
    angle = angle_of(hr)
    for i, ear in ((3, EAR_L), (4, EAR_R)):
        fig.ops.append(("ellipse", ear, kp[i], (0.011, 0.017), angle))
    fig.ops.append(("ellipse", HAIR, c, (rx * 1.03, ry), angle))


def side_head(fig: Figure, look: Look, kp: np.ndarray, head: tuple, facing: float, near: str) -> None:
    """A profile: head, nose, hair toward the back, the near ear and eye, the mouth."""
    c, hd, hr, rx, ry = head
    angle = angle_of(hr)
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
