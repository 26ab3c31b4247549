"""Keypoint sets: names, skeleton, flip pairs, OKS sigmas, body halves and drawing colours.

Everything that differs between keypoint layouts (COCO-17, a custom 100-point set, ...) lives in one
`KeypointSet`, so the transforms, codecs, evaluation and drawing never hard-code COCO.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hrformer_core.errors import DataError, UsageError

RGB = tuple[int, int, int]

# mmpose's COCO drawing colours (RGB): left side green, right side orange, centre blue.
LEFT_COLOR: RGB = (0, 255, 0)
RIGHT_COLOR: RGB = (255, 128, 0)
CENTER_COLOR: RGB = (51, 153, 255)

DEFAULT_SIGMA = 0.05

_LOWER_BODY_WORDS = ("hip", "knee", "ankle", "foot", "heel", "toe", "leg", "thigh", "shin", "calf", "pelvis")
_YAML_KEYS = {"name", "keypoints", "skeleton", "flip_pairs", "sigmas", "upper_body", "lower_body"}


@dataclass(frozen=True, eq=False)
class KeypointSet:
    """An immutable description of a keypoint layout (indices are 0-based everywhere)."""

    name: str
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: np.ndarray
    upper_body_ids: tuple[int, ...]
    lower_body_ids: tuple[int, ...]
    keypoint_colors: tuple[RGB, ...] = field(default=())
    limb_colors: tuple[RGB, ...] = field(default=())

    def __post_init__(self) -> None:
        # Normalise lists (e.g. from a caller) to tuples so the set stays immutable and hashable.
        object.__setattr__(self, "keypoints", tuple(self.keypoints))
        object.__setattr__(self, "skeleton", tuple((int(a), int(b)) for a, b in self.skeleton))
        object.__setattr__(self, "flip_pairs", tuple((int(a), int(b)) for a, b in self.flip_pairs))
        object.__setattr__(self, "upper_body_ids", tuple(int(i) for i in self.upper_body_ids))
        object.__setattr__(self, "lower_body_ids", tuple(int(i) for i in self.lower_body_ids))
        sigmas = np.array(self.sigmas, dtype=np.float64).reshape(-1)
        sigmas.setflags(write=False)
        object.__setattr__(self, "sigmas", sigmas)
        if not self.keypoint_colors:
            object.__setattr__(self, "keypoint_colors", _side_colors(self.keypoints))
        if not self.limb_colors:
            object.__setattr__(self, "limb_colors", _limb_colors(self.keypoints, self.skeleton))

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation `p` such that `flipped[:, p]` swaps every left/right pair."""
        index = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return index

    def index(self, name: str) -> int:
        return self.keypoints.index(name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeypointSet):
            return NotImplemented
        return (
            self.name == other.name
            and self.keypoints == other.keypoints
            and self.skeleton == other.skeleton
            and self.flip_pairs == other.flip_pairs
            and np.array_equal(self.sigmas, other.sigmas)
            and self.upper_body_ids == other.upper_body_ids
            and self.lower_body_ids == other.lower_body_ids
        )

    def __hash__(self) -> int:
        return hash((self.name, self.keypoints, self.skeleton, self.flip_pairs))

    def to_coco_category(self, category_id: int = 1, name: str = "person") -> dict[str, Any]:
        """The COCO `categories` entry for this set (1-based skeleton, as COCO files store it)."""
        return {
            "supercategory": name,
            "id": category_id,
            "name": name,
            "keypoints": list(self.keypoints),
            "skeleton": [[a + 1, b + 1] for a, b in self.skeleton],
        }

    @classmethod
    def from_yaml(cls, path: str | Path) -> KeypointSet:
        """Read and validate a keypoint-set YAML file.

        Schema: `name`, `keypoints` (list of names), `skeleton` and `flip_pairs` (pairs of names or
        0-based indices), optional `sigmas` (one per keypoint, default 0.05), optional `upper_body` /
        `lower_body` (names or indices; default: inferred from the names).
        """
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DataError(f"{path}: cannot read keypoint-set file ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise DataError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a mapping with keys {sorted(_YAML_KEYS)}")
        unknown = sorted(set(data) - _YAML_KEYS)
        if unknown:
            raise DataError(f"{path}: unknown key(s) {unknown}; allowed keys are {sorted(_YAML_KEYS)}")
        for key in ("name", "keypoints"):
            if key not in data:
                raise DataError(f"{path}: missing key '{key}'")
        where = str(path)
        names = _names(data["keypoints"], where)
        if not isinstance(data["name"], str) or not data["name"]:
            raise DataError(f"{where}: 'name' must be a non-empty string")
        skeleton = _pairs(data.get("skeleton", []), names, f"{where}: skeleton")
        flip_pairs = _pairs(data.get("flip_pairs", []), names, f"{where}: flip_pairs")
        _check_flip_pairs(flip_pairs, names, where)
        sigmas = _sigmas(data.get("sigmas"), len(names), where)
        upper, lower = _infer_body_halves(names)
        if "upper_body" in data:
            upper = _ids(data["upper_body"], names, f"{where}: upper_body")
        if "lower_body" in data:
            lower = _ids(data["lower_body"], names, f"{where}: lower_body")
        return cls(data["name"], names, skeleton, flip_pairs, sigmas, upper, lower)

    @classmethod
    def from_coco_category(cls, category: dict[str, Any], sigmas: Sequence[float] | None = None) -> KeypointSet:
        """Build the set of a COCO annotation file's category; returns `COCO17` when it is COCO's person.

        Flip pairs are inferred from left/right names, sigmas default to 0.05 for non-COCO layouts.
        """
        where = f"category {category.get('name', '?')!r} (id {category.get('id', '?')})"
        if "keypoints" not in category:
            raise DataError(f"{where}: has no 'keypoints' list; a keypoint category is expected")
        names = _names(category["keypoints"], where)
        raw_skeleton = category.get("skeleton") or []
        if not isinstance(raw_skeleton, list):
            raise DataError(f"{where}: 'skeleton' must be a list of [a, b] pairs (1-based)")
        skeleton = []
        for pair in raw_skeleton:
            if (
                not isinstance(pair, list | tuple)
                or len(pair) != 2
                or not all(isinstance(i, int) and 1 <= i <= len(names) for i in pair)
            ):
                raise DataError(f"{where}: skeleton entry {pair!r} must be two 1-based indices in 1..{len(names)}")
            skeleton.append((pair[0] - 1, pair[1] - 1))
        if names == COCO17.keypoints and sigmas is None:
            return COCO17
        sigma_array = _sigmas(sigmas, len(names), where)
        upper, lower = _infer_body_halves(names)
        name = str(category.get("name", "custom"))
        return cls(name, names, tuple(skeleton), _infer_flip_pairs(names), sigma_array, upper, lower)


def get_keypoint_set(name_or_path: str | Path) -> KeypointSet:
    """`coco` / `coco17` / `coco-17`, a keypoint-set YAML file, or a COCO annotation JSON (its first
    keypoint category)."""
    key = str(name_or_path)
    if key.lower().replace("-", "").replace("_", "") in ("coco", "coco17"):
        return COCO17
    path = Path(key)
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.is_file():
            raise DataError(f"{path}: keypoint-set file not found")
        return KeypointSet.from_yaml(path)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise DataError(f"{path}: annotation file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read annotation JSON ({exc})") from exc
        categories = data.get("categories", []) if isinstance(data, dict) else []
        for category in categories:
            if isinstance(category, dict) and "keypoints" in category:
                return KeypointSet.from_coco_category(category)
        raise DataError(f"{path}: no category with a 'keypoints' list in 'categories'")
    raise UsageError(
        f"unknown keypoint set {key!r}; expected 'coco17', a keypoint-set .yaml or a COCO annotation .json"
    )


def _names(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(n, str) and n for n in raw):
        raise DataError(f"{where}: 'keypoints' must be a non-empty list of names")
    duplicates = sorted({n for n in raw if raw.count(n) > 1})
    if duplicates:
        raise DataError(f"{where}: duplicate keypoint name(s) {duplicates}")
    return tuple(raw)


def _id(item: Any, names: tuple[str, ...], where: str) -> int:
    if isinstance(item, bool):
        raise DataError(f"{where}: {item!r} is not a keypoint name or index")
    if isinstance(item, int):
        if not 0 <= item < len(names):
            raise DataError(f"{where}: index {item} is out of range 0..{len(names) - 1}")
        return item
    if isinstance(item, str):
        if item not in names:
            raise DataError(f"{where}: unknown keypoint name {item!r}")
        return names.index(item)
    raise DataError(f"{where}: {item!r} is not a keypoint name or index")


def _ids(raw: Any, names: tuple[str, ...], where: str) -> tuple[int, ...]:
    if not isinstance(raw, list):
        raise DataError(f"{where}: expected a list of keypoint names or indices")
    return tuple(_id(item, names, where) for item in raw)


def _pairs(raw: Any, names: tuple[str, ...], where: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(raw, list):
        raise DataError(f"{where}: expected a list of [a, b] pairs")
    pairs = []
    for pair in raw:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise DataError(f"{where}: entry {pair!r} must be a pair [a, b]")
        a, b = _id(pair[0], names, where), _id(pair[1], names, where)
        if a == b:
            raise DataError(f"{where}: entry {pair!r} pairs a keypoint with itself")
        pairs.append((a, b))
    return tuple(pairs)


def _check_flip_pairs(pairs: tuple[tuple[int, int], ...], names: tuple[str, ...], where: str) -> None:
    used = [i for pair in pairs for i in pair]
    repeated = sorted({names[i] for i in used if used.count(i) > 1})
    if repeated:
        raise DataError(f"{where}: flip_pairs use keypoint(s) {repeated} more than once")


def _sigmas(raw: Any, count: int, where: str) -> np.ndarray:
    if raw is None:
        return np.full(count, DEFAULT_SIGMA)
    try:
        sigmas = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: 'sigmas' must be a list of {count} positive numbers") from exc
    if sigmas.shape != (count,) or not np.all(np.isfinite(sigmas)) or np.any(sigmas <= 0):
        raise DataError(f"{where}: 'sigmas' must be a list of {count} positive numbers (one per keypoint)")
    return sigmas


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[_\-\s.]+", name.lower()) if t]


def _side(name: str) -> str:
    tokens = _tokens(name)
    if "left" in tokens or (tokens and tokens[0] == "l") or (tokens and tokens[-1] == "l"):
        return "left"
    if "right" in tokens or (tokens and tokens[0] == "r") or (tokens and tokens[-1] == "r"):
        return "right"
    return "center"


def _mirror_name(tokens: list[str]) -> str:
    swap = {"left": "right", "right": "left", "l": "r", "r": "l"}
    return "_".join(swap.get(t, t) for t in tokens)


def _infer_flip_pairs(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Pair `left_x` with `right_x` (also `x_left`, `l_x`, ...), matching names token by token."""
    normalised = {"_".join(_tokens(n)): i for i, n in enumerate(names)}
    pairs = []
    for i, name in enumerate(names):
        if _side(name) != "left":
            continue
        j = normalised.get(_mirror_name(_tokens(name)))
        if j is not None and j != i:
            pairs.append((i, j))
    return tuple(pairs)


def _infer_body_halves(names: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Lower body = names mentioning hips, legs or feet; if names say nothing, split by index."""
    lower = tuple(i for i, n in enumerate(names) if any(w in n.lower() for w in _LOWER_BODY_WORDS))
    upper = tuple(i for i in range(len(names)) if i not in lower)
    if lower and upper:
        return upper, lower
    half = (len(names) + 1) // 2
    return tuple(range(half)), tuple(range(half, len(names)))


def _side_colors(names: tuple[str, ...]) -> tuple[RGB, ...]:
    table = {"left": LEFT_COLOR, "right": RIGHT_COLOR, "center": CENTER_COLOR}
    return tuple(table[_side(n)] for n in names)


def _limb_colors(names: tuple[str, ...], skeleton: tuple[tuple[int, int], ...]) -> tuple[RGB, ...]:
    colors = []
    for a, b in skeleton:
        sides = {_side(names[a]), _side(names[b])}
        colors.append(LEFT_COLOR if sides == {"left"} else RIGHT_COLOR if sides == {"right"} else CENTER_COLOR)
    return tuple(colors)


_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
# COCO's skeleton, in the order COCO files list it (converted to 0-based).
_COCO_SKELETON_1BASED = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip

COCO17 = KeypointSet(
    name="coco17",
    keypoints=_COCO_NAMES,
    skeleton=tuple((a - 1, b - 1) for a, b in _COCO_SKELETON_1BASED),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    sigmas=np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62,
                     1.07, 1.07, 0.87, 0.87, 0.89, 0.89]) / 10.0,
    upper_body_ids=tuple(range(11)),
    lower_body_ids=tuple(range(11, 17)),
    # mmpose draws the whole head (and the ear-shoulder links) in the centre colour.
    keypoint_colors=(CENTER_COLOR,) * 5 + (LEFT_COLOR, RIGHT_COLOR) * 6,
    limb_colors=(LEFT_COLOR, LEFT_COLOR, RIGHT_COLOR, RIGHT_COLOR) + (CENTER_COLOR,) * 4
    + (LEFT_COLOR, RIGHT_COLOR) * 2 + (CENTER_COLOR,) * 7,
)  # fmt: skip
