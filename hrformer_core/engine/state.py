"""Checkpoint files of a run: weights as safetensors, training state as a `weights_only`-loadable torch file.

The training state holds only tensors and plain Python values (RNG states converted), so resuming never
unpickles arbitrary objects. It includes the model weights too, so one atomic file is always a consistent
point to resume from; `weights/*.safetensors` are the weights for users and other tools.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from hrformer_core.errors import CheckpointError
from hrformer_core.models.checkpoint import load_state_dict_strict, save_model
from hrformer_core.models.config import ModelConfig
from hrformer_core.utils.io import atomic_write

STATE_FORMAT = "hrformer-train-state"
STATE_VERSION = 2
# Version 1 (checkpoints at epoch ends only) lacks epoch_step, best_step and the step log; it still resumes.
READABLE_VERSIONS = (1, 2)
WEIGHTS_FORMAT = "hrformer"


def capture_rng(device: torch.device) -> dict[str, Any]:
    """The states of the python, numpy, torch and (on a GPU) `device`'s CUDA generators, as plain values.

    Only this process's GPU is captured: touching all GPUs would open a CUDA context on each from every rank.
    """
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Inverse of `capture_rng`."""
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a training state atomically, tagged with its format and version."""
    payload = {"format": STATE_FORMAT, "version": STATE_VERSION, **state}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training state with `weights_only=True`; anything else is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: training state not found (was the run started with this toolkit?)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"{path}: not a readable training state ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an hrformer training state (expected format '{STATE_FORMAT}')")
    if state.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path}: training state version {state.get('version')}, expected one of "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    return state


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write `model`'s weights as safetensors, atomically, with `metadata`.

    HRFormer models (those with a `ModelConfig`) go through `models.checkpoint.save_model`, so the file
    carries the config and `hrformer_core.load_model` can rebuild them; other task models get the
    weights and the metadata only.
    """
    if isinstance(getattr(model, "config", None), ModelConfig):
        return save_model(model, path, metadata)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    meta = {"format": WEIGHTS_FORMAT, **(metadata or {})}
    return atomic_write(path, lambda tmp: safetensors.torch.save_file(tensors, str(tmp), metadata=meta))


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load safetensors weights into `model` strictly; a missing, corrupt or mismatching file is reported."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        tensors = safetensors.torch.load_file(str(path))
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    load_state_dict_strict(model, tensors, str(path))


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of all parameters and buffers (names, dtypes, shapes, bytes): equal digests, equal models."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{data.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
