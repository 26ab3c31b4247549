"""HRFormer models: configs, the backbone, task heads and the registry of named variants."""

from .config import ModelConfig
from .registry import HRFormerModel, build_model, create_model, list_models, model_config

__all__ = ["HRFormerModel", "ModelConfig", "build_model", "create_model", "list_models", "model_config"]
