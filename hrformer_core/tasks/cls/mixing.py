"""Mixup / CutMix on whole batches, label smoothing into soft targets, and the soft-target cross-entropy.

The official recipe (timm's `Mixup` in batch mode): with probability `prob` a batch is mixed, by CutMix with
probability `switch_prob`, else by mixup; lambda ~ Beta(alpha, alpha); each image is mixed with the batch's
mirror image (sample i with sample N-1-i). CutMix pastes a box of side sqrt(1 - lambda) of the image around a
uniform centre, clipped to the image, and lambda is then recomputed from the clipped box's area. The targets
are the smoothed one-hot vectors (1 - s + s/C on the class, s/C elsewhere) mixed with the same lambda.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class MixSection:
    """Batch mixing (alpha 0 turns that kind off) and label smoothing."""

    mixup_alpha: float = field(default=0.8, metadata={"min": 0.0})
    cutmix_alpha: float = field(default=1.0, metadata={"min": 0.0})
    prob: float = field(default=1.0, metadata={"min": 0.0, "max": 1.0})
    switch_prob: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    label_smoothing: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """(N, C) float targets: 1 - s + s/C on each label, s/C elsewhere."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32)
    targets.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)
    return targets


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a box of sides sqrt(1 - lam) of the image around a uniform centre,
    clipped to the image."""
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(top), int(bottom), int(left), int(right)


@dataclass
class MixInfo:
    """What was done to a batch: `kind` none, mixup or cutmix; lambda; the CutMix box (top, bottom, left, right)."""

    kind: str
    lam: float
    box: tuple[int, int, int, int] | None = None


def mix_batch(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, mix: MixSection, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, MixInfo]:
    """(mixed images, soft targets (N, C), what was done); `images` is (N, C, H, W) and is not modified."""
    targets = smooth_one_hot(labels, num_classes, mix.label_smoothing)
    use_mixup, use_cutmix = mix.mixup_alpha > 0, mix.cutmix_alpha > 0
    if not (use_mixup or use_cutmix) or rng.random() >= mix.prob:
        return images, targets, MixInfo("none", 1.0)
    cutmix = use_cutmix and (not use_mixup or rng.random() < mix.switch_prob)
    lam = float(rng.beta(mix.cutmix_alpha, mix.cutmix_alpha) if cutmix else rng.beta(mix.mixup_alpha, mix.mixup_alpha))
    partner = images.flip(0)
    if cutmix:
        height, width = images.shape[-2:]
        box = cutmix_box(height, width, lam, rng)
        top, bottom, left, right = box
        mixed = images.clone()
        mixed[:, :, top:bottom, left:right] = partner[:, :, top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        info = MixInfo("cutmix", lam, box)
    else:
        mixed = images * lam + partner * (1.0 - lam)
        info = MixInfo("mixup", lam)
    return mixed, targets * lam + targets.flip(0) * (1.0 - lam), info


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over samples of -sum_c target_c log softmax(logits)_c."""
    return torch.sum(-targets * torch.log_softmax(logits.float(), dim=-1), dim=-1).mean()
