"""Inference-time rewrites that keep the outputs (to float rounding) and cut the work."""

from __future__ import annotations

import copy

import torch
import torch._inductor.config
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _fold_children(parent: nn.Module) -> int:
    """Fold each BatchNorm that directly follows a conv among `parent`'s children (registration order)."""
    children = list(parent.named_children())
    folded = 0
    for (name, conv), (next_name, follower) in zip(children, children[1:], strict=False):
        if not isinstance(conv, nn.Conv2d):
            continue
        bn, holder, bn_name = follower, parent, next_name
        if isinstance(follower, nn.Sequential) and len(follower) and isinstance(follower[0], nn.BatchNorm2d):
            bn, holder, bn_name = follower[0], follower, "0"
        if isinstance(bn, nn.BatchNorm2d):
            setattr(parent, name, fuse_conv_bn_eval(conv, bn))
            setattr(holder, bn_name, nn.Identity())
            folded += 1
    return folded


def fuse_for_inference(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold every conv + BatchNorm pair into one conv (eval mode only: uses the running statistics).

    In our modules a conv's BatchNorm is always registered right after it, so the pairs are found by
    structure, not by name.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for module in list(model.modules()):
        _fold_children(module)
    return model


class FrozenCompiled(nn.Module):
    """`torch.compile` with Inductor's freezing: weights become constants, so on CPU it pre-packs them for
    oneDNN and fuses each conv with its activation.

    Freezing is read when a graph is compiled, i.e. on a call; `torch.compile(options={"freezing": True})`
    does not reach that check (measured: no speed-up), so the setting is patched around each call.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.compiled = torch.compile(model)

    def forward(self, x: torch.Tensor) -> object:
        if torch.is_grad_enabled():
            raise RuntimeError("a frozen compiled model runs under torch.no_grad() or torch.inference_mode()")
        with torch._inductor.config.patch(freezing=True):
            return self.compiled(x)


def optimize_for_inference(model: nn.Module, compile: bool = False, inplace: bool = False) -> nn.Module:
    """BatchNorm folded, channels-last and, optionally, compiled with frozen weights: the same outputs to
    float rounding."""
    model = fuse_for_inference(model, inplace).to(memory_format=torch.channels_last)
    return FrozenCompiled(model) if compile else model
