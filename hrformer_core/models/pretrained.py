"""Initialise a backbone from ImageNet weights (ours or an official classification checkpoint)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..utils.console import console
from .checkpoint import read_checkpoint
from .convert import convert_state_dict, load_checkpoint_file
from .registry import HRFormerModel


def load_pretrained_backbone(model: HRFormerModel, path: str | os.PathLike) -> None:
    """Copy the backbone weights of `path` into `model` (the task head stays freshly initialised).

    The backbone must match: every backbone tensor the model has must come from the file, with its
    shape, except the relative-position tables: an official pose checkpoint has none after conversion (the
    reference never applied them), so a model with the bias keeps its freshly initialised tables, and says so.
    Extra backbone tensors in the file (a classification model's lower-resolution outputs of the last stage,
    which pose does not keep) are ignored, as are relative-position tables the model does not use.
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
    console.print(
        f"initialised the backbone from {path}: {loaded} of {len(own)} tensors loaded, {ignored} of the file's "
        f"ignored{fresh}",
        highlight=False,
        soft_wrap=True,
    )
