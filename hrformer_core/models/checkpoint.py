"""Weights with their model config in one safetensors file (config in the metadata)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ..errors import CheckpointError
from ..utils.io import atomic_write
from .config import ModelConfig
from .registry import HRFormerModel

CONFIG_KEY = "hrformer_config"
FORMAT = "hrformer"


def save_model(
    model: HRFormerModel, path: str | os.PathLike, extra_metadata: dict[str, str] | None = None
) -> Path:
    """Write weights + config atomically; `extra_metadata` (str values) is kept beside them."""
    return save_state_dict(model.state_dict(), model.config, path, extra_metadata)


def save_state_dict(
    state_dict: dict[str, torch.Tensor],
    config: ModelConfig,
    path: str | os.PathLike,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    metadata = {"format": FORMAT, CONFIG_KEY: json.dumps(config.to_dict())}
    metadata.update({k: str(v) for k, v in (extra_metadata or {}).items()})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; a clear error for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({exc}); expected hrformer weights"
        ) from None
    return tensors, metadata


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], ModelConfig, dict[str, str]]:
    """State dict, config and metadata of one of our HRFormer safetensors files."""
    from .weights import config_of  # weights.py builds on this module

    path = Path(path)
    tensors, metadata = read_safetensors(path)
    config = config_of(path, metadata)
    if config is None:
        raise CheckpointError(
            f"{path}: no model config in the metadata nor a config.json beside it; "
            "convert official checkpoints with `hrformer convert`"
        )
    return tensors, config, metadata


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load with strict key and shape checks, naming what is missing, unexpected or mis-shaped."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mis_shaped = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
    if mis_shaped:
        k = mis_shaped[0]
        problems.append(
            f"{len(mis_shaped)} shape mismatches (e.g. {k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)})"
        )
    if problems:
        raise CheckpointError(f"{source}: weights do not match the model: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)
