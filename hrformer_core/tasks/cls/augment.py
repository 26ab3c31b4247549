"""ImageNet training augmentation on uint8 RGB arrays (OpenCV + numpy): the official HRFormer/Swin recipe.

The recipe is timm's `create_transform` with `rand-m9-mstd0.5-inc1`: bicubic random-resized crop (scale
0.08-1, ratio 3/4-4/3), horizontal flip, RandAugment (colour jitter only when RandAugment is off, as timm
does), ImageNet normalisation, then random erasing (`pixel` mode) on the normalised image. torchvision and
timm do not import beside this torch, so each op is written here from its published definition (the
RandAugment paper, arXiv:1909.13719, with timm's documented op list and magnitude ranges; PIL's ImageOps and
ImageEnhance for the pixel maths, which `tests/test_cls_augment.py` checks against PIL itself).

Every random draw comes from the numpy Generator passed in, so a sample's augmentation is a function of its
seed alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from ...data.transforms import normalize_image
from ...errors import UsageError
from .predictor import center_crop

MAX_LEVEL = 10.0  # RandAugment magnitudes run 0..10
FILL = (124, 116, 104)  # the ImageNet mean in 0..255: what geometric ops fill uncovered pixels with (timm)
TRANSLATE_FRACTION = 0.45  # TranslateXRel / TranslateYRel move by up to 45 % of the side

Op = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


# --- pixel operations (PIL semantics) -----------------------------------------------------------------------


def _lut(image: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Apply one 256-entry table per channel ((256,) or (3, 256))."""
    table = np.clip(np.asarray(table), 0, 255).astype(np.uint8)
    if table.ndim == 1:
        return table[image]
    return np.stack([table[c][image[..., c]] for c in range(image.shape[2])], axis=-1)


def _grey(image: np.ndarray) -> np.ndarray:
    """PIL's RGB -> L conversion (ITU-R 601-2 luma, rounded), as float32."""
    r, g, b = (image[..., c].astype(np.int32) for c in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.float32)


def _blend(degenerate: np.ndarray, image: np.ndarray, factor: float) -> np.ndarray:
    """PIL's Image.blend: degenerate + factor * (image - degenerate), clipped to uint8."""
    out = degenerate.astype(np.float32) + factor * (image.astype(np.float32) - degenerate.astype(np.float32))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def auto_contrast(image: np.ndarray) -> np.ndarray:
    """Stretch each channel so its darkest value becomes 0 and its brightest 255."""
    tables = []
    for c in range(image.shape[2]):
        low, high = int(image[..., c].min()), int(image[..., c].max())
        if high <= low:
            tables.append(np.arange(256))
            continue
        scale = 255.0 / (high - low)
        tables.append((np.arange(256) * scale - low * scale).astype(np.int64))
    return _lut(image, np.stack(tables))


def equalize(image: np.ndarray) -> np.ndarray:
    """Histogram equalisation per channel with PIL's step rule."""
    tables = []
    for c in range(image.shape[2]):
        hist = np.bincount(image[..., c].ravel(), minlength=256)
        used = hist[hist > 0]
        step = (int(used.sum()) - int(used[-1])) // 255 if len(used) > 1 else 0
        if step == 0:
            tables.append(np.arange(256))
            continue
        before = np.concatenate([[0], np.cumsum(hist)[:-1]])
        tables.append((step // 2 + before) // step)
    return _lut(image, np.stack(tables))


def invert(image: np.ndarray) -> np.ndarray:
    return 255 - image


def posterize(image: np.ndarray, bits: int) -> np.ndarray:
    """Keep the `bits` most significant bits of each value (0 bits: black; 8 or more: unchanged)."""
    if bits >= 8:
        return image
    mask = (0xFF << (8 - max(0, bits))) & 0xFF
    return image & np.uint8(mask)


def solarize(image: np.ndarray, threshold: int) -> np.ndarray:
    """Invert every value at or above `threshold`."""
    values = np.arange(256)
    return _lut(image, np.where(values < threshold, values, 255 - values))


def solarize_add(image: np.ndarray, add: int, threshold: int = 128) -> np.ndarray:
    """Add `add` (saturating) to every value below `threshold`."""
    values = np.arange(256)
    return _lut(image, np.where(values < threshold, np.minimum(255, values + add), values))


def color(image: np.ndarray, factor: float) -> np.ndarray:
    """Saturation: blend with the grey image (0 grey, 1 unchanged)."""
    return _blend(np.repeat(_grey(image)[..., None], 3, axis=2), image, factor)


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with a flat image of the mean grey level (PIL rounds that mean to an integer)."""
    mean = int(_grey(image).mean() + 0.5)
    return _blend(np.full_like(image, mean), image, factor)


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with black."""
    return _blend(np.zeros_like(image), image, factor)


_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0


def sharpness(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with PIL's SMOOTH-filtered image (border pixels kept), so factors above 1 sharpen."""
    smooth = np.clip(np.rint(cv2.filter2D(image.astype(np.float32), -1, _SMOOTH)), 0, 255).astype(np.uint8)
    smooth[0], smooth[-1], smooth[:, 0], smooth[:, -1] = image[0], image[-1], image[:, 0], image[:, -1]
    return _blend(smooth, image, factor)


def pil_affine(image: np.ndarray, coefficients: tuple[float, ...]) -> np.ndarray:
    """PIL's `Image.transform(AFFINE, (a, b, c, d, e, f))`: output pixel (x, y) samples the input at
    (a x + b y + c, d x + e y + f), coordinates measured from the image's corner; bicubic, filled with FILL."""
    a, b, c, d, e, f = coefficients
    linear = np.array([[a, b], [d, e]], np.float64)
    # pixel centres sit at +0.5 in PIL's coordinates and at 0 in OpenCV's
    offset = linear @ np.array([0.5, 0.5]) + np.array([c, f]) - 0.5
    matrix = np.concatenate([linear, offset[:, None]], axis=1)
    height, width = image.shape[:2]
    return cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=FILL,
    )  # fmt: skip


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Counter-clockwise rotation about the image centre (PIL's `Image.rotate`), same size."""
    height, width = image.shape[:2]
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    cx, cy = width / 2.0, height / 2.0
    # the inverse map: output (x, y) samples the input rotated back about the centre
    return pil_affine(image, (cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy))


# --- RandAugment --------------------------------------------------------------------------------------------


def _signed(value: float, rng: np.random.Generator) -> float:
    """`value` with a random sign (each op that can go both ways draws it)."""
    return -value if rng.random() > 0.5 else value


def _enhance_factor(level: float, increasing: bool, rng: np.random.Generator) -> float:
    if increasing:  # distance from 1 (no change) grows with the magnitude: 1 +- 0.9 m / 10, at least 0.1
        return max(0.1, 1.0 + _signed(level / MAX_LEVEL * 0.9, rng))
    return level / MAX_LEVEL * 1.8 + 0.1  # 0.1 .. 1.9


def _ops(increasing: bool) -> dict[str, Op]:
    """The 15 ops of timm's RandAugment (`inc1`: the variants whose strength increases with the magnitude)."""

    def enhance(fn: Callable[[np.ndarray, float], np.ndarray]) -> Op:
        return lambda img, m, rng: fn(img, _enhance_factor(m, increasing, rng))

    def posterize_op(img: np.ndarray, m: float, rng: np.random.Generator) -> np.ndarray:
        bits = int(m / MAX_LEVEL * 4)
        return posterize(img, 4 - bits if increasing else bits)

    def solarize_op(img: np.ndarray, m: float, rng: np.random.Generator) -> np.ndarray:
        threshold = int(m / MAX_LEVEL * 256)
        return solarize(img, 256 - threshold if increasing else threshold)

    def translate(axis: int) -> Op:
        def op(img: np.ndarray, m: float, rng: np.random.Generator) -> np.ndarray:
            pixels = _signed(m / MAX_LEVEL * TRANSLATE_FRACTION, rng) * img.shape[1 - axis]
            return pil_affine(img, (1, 0, pixels, 0, 1, 0) if axis == 0 else (1, 0, 0, 0, 1, pixels))

        return op

    def shear(axis: int) -> Op:
        def op(img: np.ndarray, m: float, rng: np.random.Generator) -> np.ndarray:
            factor = _signed(m / MAX_LEVEL * 0.3, rng)
            return pil_affine(img, (1, factor, 0, 0, 1, 0) if axis == 0 else (1, 0, 0, factor, 1, 0))

        return op

    suffix = "Increasing" if increasing else ""
    return {
        "AutoContrast": lambda img, m, rng: auto_contrast(img),
        "Equalize": lambda img, m, rng: equalize(img),
        "Invert": lambda img, m, rng: invert(img),
        "Rotate": lambda img, m, rng: rotate(img, _signed(m / MAX_LEVEL * 30.0, rng)),
        f"Posterize{suffix}": posterize_op,
        f"Solarize{suffix}": solarize_op,
        "SolarizeAdd": lambda img, m, rng: solarize_add(img, int(m / MAX_LEVEL * 110)),
        f"Color{suffix}": enhance(color),
        f"Contrast{suffix}": enhance(contrast),
        f"Brightness{suffix}": enhance(brightness),
        f"Sharpness{suffix}": enhance(sharpness),
        "ShearX": shear(0),
        "ShearY": shear(1),
        "TranslateXRel": translate(0),
        "TranslateYRel": translate(1),
    }


@dataclass
class RandAugment:
    """`num_ops` ops drawn with replacement, each applied with probability `prob` at a magnitude drawn from
    N(magnitude, magnitude_std) clipped to [0, 10] per op (timm's `mstd`)."""

    magnitude: float = 9.0
    num_ops: int = 2
    magnitude_std: float = 0.5
    increasing: bool = True
    prob: float = 0.5
    ops: dict[str, Op] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.ops = _ops(self.increasing)

    @classmethod
    def parse(cls, spec: str, key: str = "data.augment.rand_augment") -> RandAugment:
        """From timm's string, e.g. `rand-m9-mstd0.5-inc1` (m: magnitude, n: ops, mstd: magnitude noise, inc)."""
        parts = spec.split("-")
        if parts[0] != "rand":
            raise UsageError(f"{key}={spec!r}: expected a RandAugment string such as 'rand-m9-mstd0.5-inc1'")
        options: dict[str, float] = {}
        for part in parts[1:]:
            match = re.fullmatch(r"(mstd|inc|m|n)(\d+(?:\.\d+)?)", part)
            if match is None:
                raise UsageError(
                    f"{key}={spec!r}: unknown part {part!r} (expected m<int>, n<int>, mstd<float>, inc<0|1>)"
                )
            options[match.group(1)] = float(match.group(2))
        return cls(
            magnitude=options.get("m", MAX_LEVEL),
            num_ops=int(options.get("n", 2)),
            magnitude_std=options.get("mstd", 0.0),
            increasing=bool(options.get("inc", 0)),
        )

    def draw_magnitude(self, rng: np.random.Generator) -> float:
        magnitude = rng.normal(self.magnitude, self.magnitude_std) if self.magnitude_std > 0 else self.magnitude
        return float(min(max(magnitude, 0.0), MAX_LEVEL))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        names = list(self.ops)
        for choice in rng.integers(0, len(names), self.num_ops):
            if rng.random() > self.prob:
                continue
            image = self.ops[names[choice]](image, self.draw_magnitude(rng), rng)
        return image


# --- crop, jitter, erasing ----------------------------------------------------------------------------------


def random_resized_crop_box(
    height: int, width: int, rng: np.random.Generator, scale: tuple[float, float], ratio: tuple[float, float]
) -> tuple[int, int, int, int]:
    """(top, left, h, w): an area fraction in `scale` and an aspect ratio log-uniform in `ratio`, ten tries,
    then the centre crop clamped to `ratio` (torchvision's RandomResizedCrop.get_params)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    if width / height < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif width / height > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation factors uniform in [1 - s, 1 + s], in a random order (no hue)."""
    ops = [brightness, contrast, color]
    factors = rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength, 3)
    for i in rng.permutation(3):
        image = ops[i](image, float(factors[i]))
    return image


def random_erase(
    chw: np.ndarray,
    rng: np.random.Generator,
    area: tuple[float, float] = (0.02, 1 / 3),
    min_aspect: float = 0.3,
) -> np.ndarray:
    """timm's RandomErasing in `pixel` mode, once: a box of area fraction in `area` and log-uniform aspect in
    [min_aspect, 1/min_aspect] (ten tries) filled with N(0, 1) noise per value; on a normalised (C, H, W) image."""
    channels, height, width = chw.shape
    log_ratio = (math.log(min_aspect), math.log(1 / min_aspect))
    for _ in range(10):
        target = height * width * rng.uniform(*area)
        aspect = math.exp(rng.uniform(*log_ratio))
        h, w = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if w < width and h < height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            chw[:, top : top + h, left : left + w] = rng.standard_normal((channels, h, w), dtype=np.float32)
            return chw
    return chw


@dataclass
class ClsAugment:
    """The training augmentation options (the official values are the defaults; recipes may turn parts off)."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (0.75, 4 / 3)
    hflip: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    # timm's string; empty turns RandAugment off (and colour jitter on, as timm's create_transform does).
    rand_augment: str = "rand-m9-mstd0.5-inc1"
    color_jitter: float = field(default=0.4, metadata={"min": 0.0})
    random_erase: float = field(default=0.25, metadata={"min": 0.0, "max": 1.0})


class TrainTransform:
    """uint8 RGB image -> normalised float32 (3, H, W) with the training augmentation."""

    def __init__(self, size: tuple[int, int], augment: ClsAugment) -> None:
        self.size, self.augment = size, augment
        self.rand_augment = RandAugment.parse(augment.rand_augment) if augment.rand_augment else None

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = self.augment
        top, left, h, w = random_resized_crop_box(image.shape[0], image.shape[1], rng, a.scale, a.ratio)
        out_h, out_w = self.size
        crop = cv2.resize(image[top : top + h, left : left + w], (out_w, out_h), interpolation=cv2.INTER_CUBIC)
        if rng.random() < a.hflip:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(crop)
        if self.rand_augment is not None:
            crop = self.rand_augment(crop, rng)
        elif a.color_jitter > 0:
            crop = color_jitter(crop, a.color_jitter, rng)
        chw = normalize_image(crop)
        if rng.random() < a.random_erase:
            chw = random_erase(chw, rng)
        return chw


class TestTransform:
    """uint8 RGB image -> normalised float32 (3, H, W): resize to size / 0.875 (bicubic), centre crop."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return normalize_image(center_crop(image, self.size))
