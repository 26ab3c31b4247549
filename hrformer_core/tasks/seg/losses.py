"""The official segmentation losses: cross-entropy on the OCR and auxiliary logits, OHEM on the OCR logits.

`fs_auxce_loss` is cross-entropy on both outputs, `fs_auxohemce_loss` OHEM cross-entropy on the OCR output
and plain cross-entropy on the auxiliary one; the total is `seg + aux_weight * aux` (openseg's
`loss_helper.py`, `loss_weights` {seg_loss: 1.0, aux_loss: 0.4} of the configs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .layouts import IGNORE


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels (class-weighted mean with `weight`, as nn.CrossEntropyLoss)."""
    return F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)


def ohem_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    thresh: float,
    min_kept: int,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss over the hard pixels: those whose true-class probability is below max(thresh, the
    `min_kept`-th lowest true-class probability), as openseg's FSOhemCELoss.

    The per-pixel losses are class-weighted but averaged by count (the reference's reduction='none' + mean).
    """
    valid = target != IGNORE
    pixel_loss = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE, reduction="none")
    if not bool(valid.any()):
        return pixel_loss.sum() * 0.0
    with torch.no_grad():
        prob = torch.softmax(logits.float(), dim=1).gather(1, target.clamp(max=logits.shape[1] - 1)[:, None])[:, 0]
        sorted_prob = prob[valid].sort().values
        kth = sorted_prob[min(max(1, min_kept), sorted_prob.numel() - 1)]
        threshold = max(float(kth), thresh)
        hard = valid & (prob < threshold)
    if not bool(hard.any()):
        return pixel_loss.sum() * 0.0
    return pixel_loss[hard].mean()
