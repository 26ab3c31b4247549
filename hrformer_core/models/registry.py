"""Named model variants and `create_model`, timm style."""

from __future__ import annotations

import difflib
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UsageError
from .config import TASKS, ModelConfig
from .heads import ClassificationHead, PoseHead, SegmentationOCRHead
from .hrformer import HRFormerBackbone

# Paper Table 2 (windows 7 on every branch, MLP ratio 4, 2 blocks per branch).
VARIANTS: dict[str, dict[str, Any]] = {
    "t": dict(channels=(18, 36, 72, 144), num_heads=(1, 2, 4, 8), num_modules=(1, 1, 3, 2)),
    "s": dict(channels=(32, 64, 128, 256), num_heads=(1, 2, 4, 8), num_modules=(1, 1, 4, 2)),
    "b": dict(channels=(78, 156, 312, 624), num_heads=(2, 4, 8, 16), num_modules=(1, 1, 4, 2)),
}

# Drop-path rates of the official recipes; pose T has no official recipe and takes S's.
DROP_PATH = {
    ("t", "pose"): 0.1, ("s", "pose"): 0.1, ("b", "pose"): 0.2,
    ("t", "cls"): 0.0, ("s", "cls"): 0.0, ("b", "cls"): 0.2,
    ("t", "seg"): 0.2, ("s", "seg"): 0.2, ("b", "seg"): 0.2,
}  # fmt: skip

TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "pose": dict(fuse_upsample="bilinear", num_keypoints=17),
    "cls": dict(fuse_upsample="nearest", num_classes=1000),
    "seg": dict(fuse_upsample="nearest", num_classes=19),
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
    """Backbone + task head. Pose returns heatmaps, cls logits, seg (aux_logits, logits)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = HRFormerBackbone(config, all_outputs=config.task != "pose")
        if config.task == "pose":
            self.head: nn.Module = PoseHead(config.channels[0], config.num_keypoints)
        elif config.task == "cls":
            self.head = ClassificationHead(config.channels, config.num_classes, dense=config.block == "basic")
        else:
            self.head = SegmentationOCRHead(
                config.channels, config.num_classes, config.ocr_mid_channels, config.ocr_key_channels
            )

        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """From-scratch initialisation: He-normal convs, truncated-normal linears, a near-zero pose head.

        The pose head starts at std 0.001 (as the reference) so the first heatmaps are flat, not noise.
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
        if isinstance(self.head, PoseHead):
            nn.init.normal_(self.head.final_layer.weight, std=0.001)
            nn.init.zeros_(self.head.final_layer.bias)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        features = self.backbone(x)
        if self.config.task == "seg":
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
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}: expected one of {', '.join(TASKS)}")
    spec = dict(MODELS[name])
    variant = spec.pop("_variant")
    values: dict[str, Any] = dict(name=name, task=task, drop_path_rate=DROP_PATH[(variant, task)])
    values.update(TASK_DEFAULTS[task])
    values.update(spec)
    values.update(overrides)
    return ModelConfig.from_dict(values)


def create_model(name: str, task: str = "pose", **overrides: Any) -> HRFormerModel:
    """Build a named variant for a task, e.g. `create_model("hrformer-b", task="pose", num_keypoints=17)`."""
    return HRFormerModel(model_config(name, task, **overrides))


def build_model(config: ModelConfig) -> HRFormerModel:
    return HRFormerModel(config)
