"""Classification augmentation and batch mixing against their published definitions (PIL for the pixel maths,
timm's documented magnitude ranges, the mixup/CutMix and label-smoothing formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from hrformer_core.errors import UsageError
from hrformer_core.tasks.cls import augment as A
from hrformer_core.tasks.cls.mixing import MixSection, cutmix_box, mix_batch, smooth_one_hot, soft_target_cross_entropy


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = (rng.random((37, 45, 3)) * 180 + 30).astype(np.uint8)
    img[5:20, 10:30] = rng.integers(0, 256, (15, 20, 3))
    return img


def _diff(ours: np.ndarray, reference: Image.Image) -> np.ndarray:
    return np.abs(ours.astype(int) - np.asarray(reference).astype(int))


def test_pixel_ops_match_pil(image: np.ndarray) -> None:
    pil = Image.fromarray(image)
    assert _diff(A.auto_contrast(image), ImageOps.autocontrast(pil)).max() == 0
    assert _diff(A.equalize(image), ImageOps.equalize(pil)).max() == 0
    assert _diff(A.invert(image), ImageOps.invert(pil)).max() == 0
    for bits in (1, 4):
        assert _diff(A.posterize(image, bits), ImageOps.posterize(pil, bits)).max() == 0
    assert not A.posterize(image, 0).any()  # timm's increasing posterize reaches 0 bits at m=10: black
    assert _diff(A.solarize(image, 26), ImageOps.solarize(pil, 26)).max() == 0
    for ours, theirs in [(A.color, ImageEnhance.Color), (A.contrast, ImageEnhance.Contrast),
                         (A.brightness, ImageEnhance.Brightness), (A.sharpness, ImageEnhance.Sharpness)]:  # fmt: skip
        for factor in (0.19, 1.81):
            assert _diff(ours(image, factor), theirs(pil).enhance(factor)).max() <= 1  # PIL rounds in fixed point
    added = A.solarize_add(image, 99)
    expected = np.where(image < 128, np.minimum(255, image.astype(int) + 99), image)
    assert np.array_equal(added, expected)


@pytest.mark.parametrize("kind", ["shear", "translate", "rotate"])
def test_geometric_ops_match_pil_geometry(image: np.ndarray, kind: str) -> None:
    pil = Image.fromarray(image)
    if kind == "shear":
        ours, theirs = A.pil_affine(image, (1, 0.27, 0, 0, 1, 0)), pil.transform(
            pil.size, Image.AFFINE, (1, 0.27, 0, 0, 1, 0), resample=Image.BICUBIC, fillcolor=A.FILL
        )
    elif kind == "translate":
        ours, theirs = A.pil_affine(image, (1, 0, 10, 0, 1, 0)), pil.transform(
            pil.size, Image.AFFINE, (1, 0, 10, 0, 1, 0), resample=Image.BICUBIC, fillcolor=A.FILL
        )
    else:
        ours, theirs = A.rotate(image, 27.0), pil.rotate(27.0, resample=Image.BICUBIC, fillcolor=A.FILL)
    diff = _diff(ours, theirs)
    # Same geometry; OpenCV's and PIL's bicubic kernels differ a little, and at the filled border.
    assert np.median(diff) <= 2 and (diff > 20).mean() < 0.05


def test_rand_augment_string_ops_and_magnitudes() -> None:
    ra = A.RandAugment.parse("rand-m9-mstd0.5-inc1")
    assert (ra.magnitude, ra.num_ops, ra.magnitude_std, ra.increasing) == (9, 2, 0.5, True)
    assert list(ra.ops) == [
        "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
        "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
        "TranslateXRel", "TranslateYRel",
    ]  # fmt: skip
    # mstd: N(9, 0.5) clipped to [0, 10]
    draws = np.array([ra.draw_magnitude(np.random.default_rng(i)) for i in range(2000)])
    assert draws.max() <= 10 and abs(draws.mean() - 9) < 0.05 and abs(draws.std() - 0.5) < 0.05
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))[..., None].repeat(3, 2)
    rng = np.random.default_rng(0)
    # m=9, increasing: posterize keeps 4 - int(3.6) = 1 bit; solarize above 256 - int(230.4) = 26
    assert np.array_equal(ra.ops["PosterizeIncreasing"](ramp, 9.0, rng), ramp & 0x80)
    values = np.arange(256)
    solarized = ra.ops["SolarizeIncreasing"](ramp, 9.0, rng)[0, :, 0]
    assert np.array_equal(solarized, np.where(values < 26, values, 255 - values))
    # brightness factor 1 +- 0.9 * 9 / 10, either sign
    grey = np.full((4, 4, 3), 100, np.uint8)
    values = {int(ra.ops["BrightnessIncreasing"](grey, 9.0, np.random.default_rng(s))[0, 0, 0]) for s in range(20)}
    assert values == {19, 181}
    with pytest.raises(UsageError, match="rand-m9-x1"):
        A.RandAugment.parse("rand-m9-x1")


def test_random_resized_crop_and_erasing_boxes() -> None:
    for seed in range(200):
        rng = np.random.default_rng(seed)
        top, left, h, w = A.random_resized_crop_box(300, 400, rng, (0.08, 1.0), (0.75, 4 / 3))
        assert top >= 0 and top + h <= 300 and left >= 0 and left + w <= 400
        assert 0.08 * 120000 * 0.97 <= h * w <= 120000
    chw = np.zeros((3, 40, 50), np.float32)
    A.random_erase(chw, np.random.default_rng(1))
    erased = np.argwhere(np.any(chw != 0, axis=0))
    (y0, x0), (y1, x1) = erased.min(0), erased.max(0)
    area = (y1 - y0 + 1) * (x1 - x0 + 1)
    assert len(erased) == area and 0.02 * 2000 * 0.9 <= area <= 2000 / 3 * 1.1  # one rectangle of noise


def test_mixup_and_cutmix_targets() -> None:
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 20, 30).contiguous()
    labels = torch.tensor([0, 1, 2, 3])
    kinds = set()
    for seed in range(40):
        mixed, targets, info = mix_batch(images, labels, 5, MixSection(), np.random.default_rng(seed))
        kinds.add(info.kind)
        torch.testing.assert_close(targets.sum(1), torch.ones(4))
        if info.kind == "cutmix":
            top, bottom, left, right = info.box
            assert info.lam == pytest.approx(1 - (bottom - top) * (right - left) / 600)
            # sample 0 shows sample 3 inside the box, itself outside
            assert (mixed[0, :, top:bottom, left:right] == 3).all()
            assert (mixed[0] == 0).sum() == 3 * (600 - (bottom - top) * (right - left))
        else:
            torch.testing.assert_close(mixed[0], torch.full((3, 20, 30), 3 * (1 - info.lam)))
        # the weights of the two classes are lambda and 1 - lambda, smoothed
        off = 0.1 / 5
        assert targets[0, 0] == pytest.approx(info.lam * (0.9 + off) + (1 - info.lam) * off)
        assert targets[0, 3] == pytest.approx((1 - info.lam) * (0.9 + off) + info.lam * off)
    assert kinds == {"mixup", "cutmix"}  # switch_prob 0.5 picks both


def test_cutmix_box_side_follows_lambda() -> None:
    top, bottom, left, right = cutmix_box(100, 100, 0.75, np.random.default_rng(0))
    assert bottom - top <= 50 and right - left <= 50  # sqrt(1 - 0.75) of each side, clipped


def test_label_smoothing_loss_against_the_formula() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    labels = torch.tensor([0, 1])
    loss = soft_target_cross_entropy(logits, smooth_one_hot(labels, 3, 0.1))
    expected = 0.0
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        log_z = math.log(sum(math.exp(v) for v in row))
        log_p = [v - log_z for v in row]
        expected += -(0.9 * log_p[label] + 0.1 / 3 * sum(log_p))
    assert loss.item() == pytest.approx(expected / 2, rel=1e-6)
