"""Named model variants and `create_model`, timm style."""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UsageError
from .config import ModelConfig
from .heads import head_spec
from .hrformer import HRFormerBackbone

# Paper Table 2 (windows 7 on every branch, MLP ratio 4, 2 blocks per branch).
VARIANTS: dict[str, dict[str, Any]] = {
    "t": dict(channels=(18, 36, 72, 144), num_heads=(1, 2, 4, 8), num_modules=(1, 1, 3, 2)),
    "s": dict(channels=(32, 64, 128, 256), num_heads=(1, 2, 4, 8), num_modules=(1, 1, 4, 2)),
    "b": dict(channels=(78, 156, 312, 624), num_heads=(2, 4, 8, 16), num_modules=(1, 1, 4, 2)),
}


def _registry() -> dict[str, dict[str, Any]]:
    names: dict[str, dict[str, Any]] = {}
    for variant, arch in VARIANTS.items():
        names[f"hrformer-{variant}"] = dict(arch, _variant=variant)
        names[f"hrnet-{variant}"] = dict(arch, block="basic", _variant=variant)
    for window in (13, 15):
        names[f"hrformer-b-w{window}"] = dict(VARIANTS["b"], window_sizes=(window,) * 4, _variant="b")
    return names


MODELS = _registry()


class HRFormerModel(nn.Module):
    """Backbone + the head `config.task` names (models.heads.HEADS): pose heatmaps, cls logits, seg
    (aux_logits, logits)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.spec = head_spec(config.task)
        self.backbone = HRFormerBackbone(config, all_outputs=self.spec.all_branches)
        self.head: nn.Module = self.spec.build(config)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """From-scratch initialisation: He-normal convs, truncated-normal linears, a near-zero pose head.

        A head with `near_zero_init` (pose) starts that layer at std 0.001 (as the reference), so the first
        heatmaps are flat, not noise.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d | nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.spec.near_zero_init:
            layer = getattr(self.head, self.spec.near_zero_init)
            nn.init.normal_(layer.weight, std=0.001)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        features = self.backbone(x)
        if self.spec.takes_input_size:
            return self.head(features, tuple(x.shape[-2:]))
        return self.head(features)


def list_models() -> list[str]:
    return sorted(MODELS)


def model_config(name: str, task: str = "pose", **overrides: Any) -> ModelConfig:
    """The config `create_model(name, task, **overrides)` builds, without building it."""
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown model {name!r}{hint}: expected one of {', '.join(list_models())}")
    head = head_spec(task)
    spec = dict(MODELS[name])
    variant = spec.pop("_variant")
    values: dict[str, Any] = dict(name=name, task=task, drop_path_rate=head.drop_path[variant])
    values.update(head.defaults)
    values.update(spec)
    values.update(overrides)
    return ModelConfig.from_dict(values)


def create_model(name: str, task: str = "pose", **overrides: Any) -> HRFormerModel:
    """Build a named variant for a task, e.g. `create_model("hrformer-b", task="pose", num_keypoints=17)`."""
    return HRFormerModel(model_config(name, task, **overrides))


def build_model(config: ModelConfig) -> HRFormerModel:
    return HRFormerModel(config)
