"""`--weights`: our safetensors file, a run folder, an official/mmpose .pth, or `hf://ORG/NAME[@REVISION]`.

Every route ends in the same strict load (all keys, all shapes) and records where the weights came from,
so predictions can say exactly which weights (and which Hub commit) produced them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UsageError
from ..models.checkpoint import load_state_dict_strict, read_checkpoint
from ..models.config import ModelConfig
from ..models.convert import convert_state_dict, load_checkpoint_file
from ..models.registry import HRFormerModel, build_model
from ..utils.console import console

# Input size (H, W) per task when the weights do not record one: the reference recipes' defaults
# (COCO 256x192, ImageNet 224, Cityscapes crops 512x1024).
DEFAULT_INPUT_SIZE = {"pose": (256, 192), "cls": (224, 224), "seg": (512, 1024)}
PTH_SUFFIXES = (".pth", ".pt", ".bin")
NO_WEIGHTS_HELP = (
    "no weights given: pass --weights with a trained model (runs/<task>/.../weights/best.safetensors or the run "
    "folder), an official HRFormer/mmpose .pth (convert it once with `hrformer convert`), or a Hub model "
    "hf://ORG/NAME"
)


@dataclass
class LoadedWeights:
    """A ready model (eval mode) and the provenance written beside its predictions."""

    model: HRFormerModel
    source: str  # what the user passed
    path: Path  # the file actually read
    kind: str  # "safetensors", "run", "pth" or "hub"
    metadata: dict[str, str] = field(default_factory=dict)
    hub_commit: str | None = None

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def provenance(self) -> dict[str, Any]:
        info: dict[str, Any] = {"source": self.source, "kind": self.kind, "file": str(self.path)}
        if self.hub_commit is not None:
            info["hub_commit"] = self.hub_commit
        info["model"] = self.config.to_dict()
        return info

    def to(self, device: str | torch.device) -> LoadedWeights:
        self.model.to(device).eval()
        return self


def parse_size(size: str | tuple[int, int] | list[int], what: str = "input size") -> tuple[int, int]:
    """`"256x192"` (H x W), `"224"` (square) or a pair -> (H, W) of positive ints."""
    text = "x".join(map(str, size)) if isinstance(size, tuple | list) else str(size)
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"{what} {size!r}: expected HxW in pixels, e.g. 256x192")
    return int(parts[0]), int(parts[1])


def input_size_of(config: ModelConfig, metadata: dict[str, str] | None = None) -> tuple[int, int]:
    """The (H, W) the model was trained at: config.extra["input_size"], the weights' metadata, else the task default."""
    recorded = config.extra.get("input_size") or (metadata or {}).get("input_size")
    if recorded:
        return parse_size(recorded, "recorded input size")
    return DEFAULT_INPUT_SIZE[config.task]


def load_weights(spec: str | os.PathLike | None, device: str | torch.device = "cpu") -> LoadedWeights:
    """Resolve `--weights` and load the model strictly."""
    if spec is None or str(spec) == "":
        raise UsageError(NO_WEIGHTS_HELP)
    text = str(spec)
    if text.startswith("hf://"):
        return _from_hub(text).to(device)
    path = Path(text).expanduser()
    if path.is_dir():
        return _from_safetensors(text, run_weights(path), "run").to(device)
    if not path.exists():
        raise UsageError(f"--weights {text!r}: no such file or folder; {NO_WEIGHTS_HELP.split(': ', 1)[1]}")
    if path.suffix == ".safetensors":
        return _from_safetensors(text, path, "safetensors").to(device)
    if path.suffix in PTH_SUFFIXES:
        return _from_pth(text, path).to(device)
    raise CheckpointError(
        f"--weights {text!r}: unknown weights type {path.suffix!r}; expected .safetensors, .pth or a run folder"
    )


def run_weights(folder: Path) -> Path:
    """A run folder's weights: weights/best.safetensors, else weights/last.safetensors."""
    for name in ("best", "last"):
        candidate = folder / "weights" / f"{name}.safetensors"
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"{folder}: run folder without weights/best.safetensors or weights/last.safetensors")


def _from_safetensors(source: str, path: Path, kind: str) -> LoadedWeights:
    tensors, config, metadata = read_checkpoint(path)
    model = build_model(config)
    load_state_dict_strict(model, tensors, str(path))
    return LoadedWeights(model, source, path, kind, metadata)


def _from_pth(source: str, path: Path) -> LoadedWeights:
    state_dict, report = convert_state_dict(load_checkpoint_file(path))
    model = build_model(report.config)
    load_state_dict_strict(model, state_dict, str(path))
    console.print(
        f"note: converted {path.name} ({report.source_naming} naming, {report.task}, {report.config.name}) on the fly; "
        f"`hrformer convert {path}` saves it once as safetensors",
        highlight=False,
        soft_wrap=True,
    )
    return LoadedWeights(model, source, path, "pth")


def _from_hub(spec: str) -> LoadedWeights:
    # Imported here: huggingface_hub costs import time that local predictions should not pay.
    from ..hub import check_config_matches, download

    files = download(spec)
    tensors, config, metadata = read_checkpoint(files.weights)
    check_config_matches(files, config)
    model = build_model(config)
    load_state_dict_strict(model, tensors, spec)
    console.print(f"weights: {spec} at commit {files.commit}", highlight=False, soft_wrap=True)
    return LoadedWeights(model, spec, files.weights, "hub", metadata, files.commit)
