"""Helpers for the golden reference fixtures in ../shared/fixtures (see its README for the fill rule)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"


def require_fixtures() -> Path:
    if not (FIXTURES / "README.md").is_file():
        pytest.skip(f"reference fixtures not found at {FIXTURES} (they ship in the project's shared/ folder)")
    return FIXTURES


def reference_state_dict(stem: str, key_field: str = "key") -> dict[str, torch.Tensor]:
    """The reference model's state dict, filled by the fixture README's deterministic rule."""
    spec = json.loads((require_fixtures() / f"{stem}.keys.json").read_text())
    state = {}
    for entry in spec["keys"]:
        key, shape, init = entry["key"], entry["shape"], entry["init"]
        dtype = getattr(torch, entry["dtype"])
        if init == "as_is":
            if key.endswith("num_batches_tracked"):
                state[entry[key_field]] = torch.zeros((), dtype=dtype)
            else:  # relative_position_index: the converter drops it, any constant will do
                state[entry[key_field]] = torch.zeros(shape, dtype=dtype)
            continue
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        r = torch.randn(shape, generator=gen) * 0.02
        state[entry[key_field]] = {"r": r, "1+r": 1 + r, "1+abs(r)": 1 + r.abs()}[init]
    return state


def reference_io(stem: str) -> dict[str, torch.Tensor]:
    return load_file(str(require_fixtures() / f"{stem}.safetensors"))
