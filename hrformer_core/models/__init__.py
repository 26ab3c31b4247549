"""HRFormer models: configs, the backbone, task heads, the registry of named variants and weights."""

from .config import ModelConfig
from .registry import HRFormerModel, build_model, create_model, list_models, model_config
from .weights import WeightsFile, load_model, resolve_weights

__all__ = [
    "HRFormerModel",
    "ModelConfig",
    "WeightsFile",
    "build_model",
    "create_model",
    "list_models",
    "load_model",
    "model_config",
    "resolve_weights",
]
