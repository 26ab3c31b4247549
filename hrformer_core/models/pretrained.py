"""Initialise a backbone from ImageNet weights (ours or an official classification checkpoint)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from ..utils.console import console
from .checkpoint import read_checkpoint
from .convert import convert_state_dict, load_checkpoint_file
from .registry import HRFormerModel


def load_pretrained_backbone(model: HRFormerModel, path: str | os.PathLike) -> int:
    """Copy the backbone weights of `path` into `model` (the task head stays freshly initialised).

    The backbone must match: every backbone tensor the model has must come from the file, with its
    shape, except the relative-position tables: an official pose checkpoint has none after conversion (the
    reference never applied them), so a model with the bias keeps its freshly initialised tables, and says so.
    Extra backbone tensors in the file (a classification model's lower-resolution outputs of the last stage,
    which pose does not keep) are ignored, as are relative-position tables the model does not use. Tables of
    another window size (ImageNet's window 7 into the window-13/15 segmentation models) are resized
    (`resize_bias_table`); the message says how many, and so does the return value.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        state, _, _ = read_checkpoint(path)
    else:
        state, _ = convert_state_dict(load_checkpoint_file(path))
    source = {k: v for k, v in state.items() if k.startswith("backbone.")}
    own = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    fresh_tables = [k for k in own if k not in source and k.endswith("relative_position_bias_table")]
    missing = [k for k in own if k not in source and k not in fresh_tables and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(
            f"{path}: lacks {len(missing)} backbone tensors of {model.config.name} (e.g. {missing[0]}); "
            "is it the same variant?"
        )
    resized = [
        k
        for k in own
        if k.endswith("relative_position_bias_table") and k in source and _is_other_window(source[k], own[k])
    ]
    for key in resized:
        source[key] = resize_bias_table(source[key], own[key].shape[0])
    mis_shaped = [k for k in own if k in source and source[k].shape != own[k].shape]
    if mis_shaped:
        k = mis_shaped[0]
        raise CheckpointError(
            f"{path}: {k} has shape {tuple(source[k].shape)}, the model needs {tuple(own[k].shape)}; "
            "is it the same variant and window size?"
        )
    with torch.no_grad():
        for key, value in own.items():
            if key in source:
                value.copy_(source[key])
    loaded = sum(key in source for key in own)
    ignored = sum(key not in own for key in source)
    fresh = f"; {len(fresh_tables)} relative-position tables it lacks keep their initialisation" if fresh_tables else ""
    if resized:
        grids = sorted({(math.isqrt(state[k].shape[0]), math.isqrt(own[k].shape[0])) for k in resized})
        sizes = ", ".join(f"{a}x{a} to {b}x{b}" for a, b in grids)
        fresh += f"; {len(resized)} relative-position tables interpolated ({sizes}, bilinear as the official seg code)"
    console.print(
        f"initialised the backbone from {path}: {loaded} of {len(own)} tensors loaded, {ignored} of the file's "
        f"ignored{fresh}",
        highlight=False,
        soft_wrap=True,
    )
    return len(resized)


def _is_square(count: int) -> bool:
    return math.isqrt(count) ** 2 == count


def _is_other_window(table: torch.Tensor, own: torch.Tensor) -> bool:
    """A relative-position table of another window size with the same heads (both (side * side, heads))."""
    return (
        table.ndim == own.ndim == 2
        and table.shape[1] == own.shape[1]
        and table.shape[0] != own.shape[0]
        and _is_square(table.shape[0])
        and _is_square(own.shape[0])
    )


def resize_bias_table(table: torch.Tensor, entries: int) -> torch.Tensor:
    """A (side * side, heads) relative-position table resized to (entries, heads), per head on its offset grid.

    As the official segmentation code initialises its window-13/15 backbones from the window-7 ImageNet
    weights (openseg `ModuleHelper.load_model`, network "hrt_window", used for hrt_base_win13/win15): each
    head's table is viewed as a (2*7-1) x (2*7-1) grid of (dy, dx) offsets and resized with
    `F.interpolate(mode="bilinear")` (align_corners=False) to the new (2w-1) x (2w-1) grid, scale 1. The centre
    (offset 0) maps to the centre; the grid's border values are held constant beyond it.
    """
    side, heads = math.isqrt(table.shape[0]), table.shape[1]
    target = math.isqrt(entries)
    grid = table.detach().t().reshape(1, heads, side, side).float()
    resized = F.interpolate(grid, size=(target, target), mode="bilinear", align_corners=False)
    return resized.reshape(heads, target * target).t().contiguous().to(table.dtype)
