"""hrformer_core: the High-Resolution Transformer library behind the `hrformer` CLI.

The model API reads like timm's: `create_model("hrformer-b", task="pose")`, `list_models()`, and
`load_model(weights)` for our safetensors files, run folders, official/mmpose .pth files or `hf://` models.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models", "load_model", "model_config"]

_MODEL_API = {
    "create_model": "hrformer_core.models.registry",
    "list_models": "hrformer_core.models.registry",
    "model_config": "hrformer_core.models.registry",
    "load_model": "hrformer_core.models.weights",
}


def __getattr__(name: str) -> Any:
    # Lazy: `hrformer --version` and the CLI's argument parsing should not pay for importing torch.
    if name in _MODEL_API:
        import importlib

        return getattr(importlib.import_module(_MODEL_API[name]), name)
    raise AttributeError(f"module 'hrformer_core' has no attribute {name!r}")
