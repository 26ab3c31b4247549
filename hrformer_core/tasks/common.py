"""What the three HRFormer tasks share: models from weights files, the recipe-vs-weights check, pretrained
backbones and the reference's weight-decay exemption. A task with its own kind of model (the engine tests'
toy task) subclasses `Task` directly instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

from ..engine.optim import weight_decay_groups
from ..engine.schema import SAFE, DataSection, ModelSection
from ..models import ModelConfig, create_model, model_config
from ..models.heads import head_spec
from ..models.pretrained import load_pretrained_backbone
from ..models.weights import WeightsFile, hrformer_model, input_size_of
from ..utils.console import console
from .base import Task

# ModelConfig fields that decide the architecture (what a recipe and a weights file can disagree on).
ARCHITECTURE_FIELDS = (
    "name", "channels", "num_heads", "num_modules", "num_blocks", "window_sizes", "mlp_ratio", "block",
    "ffn_dw", "shifted_windows", "rel_pos_bias", "fuse_upsample", "num_keypoints", "num_classes",
)  # fmt: skip


@dataclass
class HRFormerModelSection(ModelSection):
    """The model keys every HRFormer task's recipe has; task sections add their own."""

    name: str = "hrformer-t"
    drop_path_rate: float | None = field(default=None, metadata={"min": 0.0, "max": 1.0})
    rel_pos_bias: bool = True
    # Ablation switches (paper Tables 7 and 9, the segmentation window sizes); null keeps the model's own.
    window_sizes: tuple[int, int, int, int] | None = None
    ffn_dw: bool | None = None
    shifted_windows: bool | None = None
    pretrained: str = ""  # ImageNet weights for the backbone: ours (.safetensors) or an official .pth
    # Recompute the transformer branches in the backward pass: less activation memory, ~30 % more compute.
    grad_checkpointing: bool = False


@dataclass
class ImageDataSection(DataSection):
    """Data keys every image dataset's recipe has: how many unreadable items are skipped before stopping."""

    max_bad_fraction: float = field(default=0.01, metadata={"min": 0.0, "max": 1.0, **SAFE})


class HRFormerTask(Task):
    """A task whose model is an HRFormer (or HRNet) backbone with the head `head` names."""

    head: ClassVar[str]

    def model_options(self, recipe: Any) -> dict[str, Any]:
        """ModelConfig overrides from the recipe (outputs, options, what to keep in `extra`)."""
        options: dict[str, Any] = {}
        for key in ("rel_pos_bias", "window_sizes", "ffn_dw", "shifted_windows"):
            value = getattr(recipe.model, key, None)
            if value is not None:
                options[key] = tuple(value) if isinstance(value, list) else value
        if getattr(recipe.model, "drop_path_rate", None) is not None:
            options["drop_path_rate"] = recipe.model.drop_path_rate
        return options

    def recipe_model_config(self, recipe: Any) -> ModelConfig:
        return model_config(recipe.model.name, self.head, **self.model_options(recipe))

    def build_model(self, recipe: Any) -> nn.Module:
        model = create_model(recipe.model.name, task=self.head, **self.model_options(recipe))
        if recipe.model.pretrained:
            load_pretrained_backbone(model, recipe.model.pretrained)
        model.backbone.set_grad_checkpointing(getattr(recipe.model, "grad_checkpointing", False))
        return model

    def model_from_weights(self, weights: WeightsFile) -> nn.Module:
        return hrformer_model(weights)

    def check_recipe_model(self, recipe: Any, model: nn.Module, source: str) -> None:
        wanted = self.recipe_model_config(recipe)
        have = model.config
        differences = [
            f"{key}={_show(getattr(have, key))} (recipe: {_show(getattr(wanted, key))})"
            for key in ARCHITECTURE_FIELDS
            if getattr(have, key) != getattr(wanted, key)
        ]
        if differences:
            console.print(
                f"note: {source} is a different model from the recipe's: {', '.join(differences)}; "
                "the weights' model is used (the recipe's data and evaluation settings still apply)",
                highlight=False,
                soft_wrap=True,
            )

    def output_names(self, weights: WeightsFile) -> tuple[str, ...]:
        return head_spec(self.head).output_names

    def default_input_size(self, weights: WeightsFile) -> tuple[int, int]:
        return input_size_of(weights.config, weights.metadata)

    def param_groups(self, model: nn.Module, recipe: Any) -> list[dict[str, Any]]:
        # The reference's exemption: no weight decay on the relative-position tables.
        return weight_decay_groups(
            model, recipe.train.optimizer.weight_decay, lambda name, _: "relative_position_bias_table" in name
        )


def _show(value: Any) -> str:
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)
