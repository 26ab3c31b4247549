"""`--weights`: our safetensors file, a run folder, an official/mmpose .pth, or `hf://ORG/NAME[@REVISION]`.

`resolve_weights` turns any of these into one `WeightsFile` (tensors, metadata, the HRFormer config when the
file has one, and where it came from); the task named in it builds the model (`tasks.load_task_model`), so
predictions can say exactly which weights (and which Hub commit) produced them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UsageError
from ..utils.console import console
from ..utils.sizes import parse_size
from .checkpoint import CONFIG_KEY, load_state_dict_strict, read_safetensors
from .config import ModelConfig
from .convert import convert_state_dict, load_checkpoint_file
from .heads import head_spec
from .registry import HRFormerModel, build_model

PTH_SUFFIXES = (".pth", ".pt", ".bin")
LATEST = "last"  # `--weights last`: the newest run folder's weights
RUNS_DIR = Path("runs")
NO_WEIGHTS_HELP = (
    "no weights given: pass --weights with a trained model (runs/<task>/.../weights/best.safetensors or the run "
    "folder), an official HRFormer/mmpose .pth (convert it once with `hrformer convert`), or a Hub model "
    "hf://ORG/NAME"
)


@dataclass
class WeightsFile:
    """What `--weights` resolved to: the tensors, their metadata and provenance."""

    source: str  # what the user passed
    path: Path  # the file actually read
    kind: str  # "safetensors", "run", "pth" or "hub"
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)
    config: ModelConfig | None = None  # HRFormer models' config (None for other task models)
    hub_commit: str | None = None

    @property
    def task(self) -> str:
        """The task the weights were trained or converted for."""
        if "task" in self.metadata:
            return self.metadata["task"]
        if self.config is not None:
            return self.config.task
        raise CheckpointError(f"{self.path}: the weights name no task (no 'task' or model config in the metadata)")

    def provenance(self) -> dict[str, Any]:
        info: dict[str, Any] = {"source": self.source, "kind": self.kind, "file": str(self.path), "task": self.task}
        if self.hub_commit is not None:
            info["hub_commit"] = self.hub_commit
        if self.config is not None:
            info["model"] = self.config.to_dict()
        return info


def input_size_of(config: ModelConfig, metadata: dict[str, str] | None = None) -> tuple[int, int]:
    """The (H, W) the model was trained at: config.extra["input_size"], the metadata, else the reference's."""
    recorded = config.extra.get("input_size") or (metadata or {}).get("input_size")
    if recorded:
        return parse_size(recorded, "recorded input size")
    return head_spec(config.task).reference_input_size


def resolve_weights(
    spec: str | os.PathLike | None, runs: str | os.PathLike = RUNS_DIR, pattern: str = "*/*"
) -> WeightsFile:
    """Find and read `--weights` (converting official .pth files on the fly).

    `last` is the newest run folder with weights among `runs/<pattern>` (by default any task and recipe;
    `hrformer eval` narrows it to its recipe's runs, `runs/<task>/<name>*`).
    """
    if spec is None or str(spec) == "":
        raise UsageError(NO_WEIGHTS_HELP)
    text = str(spec)
    if text == LATEST:
        folder = latest_run(Path(runs), pattern)
        console.print(f"weights: {LATEST} = {folder}", highlight=False, soft_wrap=True)
        return _from_safetensors(text, run_weights(folder), "run")
    if text.startswith("hf://"):
        return _from_hub(text)
    path = Path(text).expanduser()
    if path.is_dir():
        return _from_safetensors(text, run_weights(path), "run")
    if not path.exists():
        raise UsageError(f"--weights {text!r}: no such file or folder; {NO_WEIGHTS_HELP.split(': ', 1)[1]}")
    if path.suffix == ".safetensors":
        return _from_safetensors(text, path, "safetensors")
    if path.suffix in PTH_SUFFIXES:
        return _from_pth(text, path)
    raise CheckpointError(
        f"--weights {text!r}: unknown weights type {path.suffix!r}; expected .safetensors, .pth or a run folder"
    )


def load_model(spec: str | os.PathLike, device: str | torch.device = "cpu") -> HRFormerModel:
    """A ready HRFormer model (eval mode) from any `--weights` form: safetensors, run folder, .pth, hf://."""
    return hrformer_model(resolve_weights(spec)).to(device).eval()


def hrformer_model(weights: WeightsFile) -> HRFormerModel:
    """The HRFormer model a weights file describes, strictly loaded, in eval mode."""
    if weights.config is None:
        raise CheckpointError(f"{weights.path}: not an HRFormer model (no model config in the metadata)")
    model = build_model(weights.config)
    load_state_dict_strict(model, weights.tensors, str(weights.path))
    return model.eval()


def latest_run(runs: Path, pattern: str = "*/*") -> Path:
    """The run folder under `runs` (matching `pattern`) whose weights were written last."""
    candidates = [
        weights.parent.parent
        for folder in runs.glob(pattern)
        for weights in (folder / "weights" / "best.safetensors", folder / "weights" / "last.safetensors")
        if weights.is_file()
    ]
    if not candidates:
        raise UsageError(
            f"--weights {LATEST}: no run folder with weights under {runs / pattern}; train one first "
            "(`hrformer train --recipe quickstart`) or pass a weights file or run folder"
        )
    return max(candidates, key=lambda folder: max(p.stat().st_mtime for p in (folder / "weights").glob("*")))


def run_weights(folder: Path) -> Path:
    """A run folder's weights: weights/best.safetensors, else weights/last.safetensors."""
    for name in ("best", "last"):
        candidate = folder / "weights" / f"{name}.safetensors"
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"{folder}: run folder without weights/best.safetensors or weights/last.safetensors")


def config_of(path: Path, metadata: dict[str, str]) -> ModelConfig | None:
    """The HRFormer config in the metadata (or a config.json beside the file), or None when there is none."""
    config_json = metadata.get(CONFIG_KEY)
    sidecar = path.with_name("config.json")
    if config_json is None and sidecar.is_file():
        config_json = sidecar.read_text(encoding="utf-8")
    if config_json is None:
        return None
    try:
        return ModelConfig.from_dict(json.loads(config_json))
    except (json.JSONDecodeError, TypeError, UsageError) as exc:
        raise CheckpointError(f"{path}: malformed model config ({exc})") from None


def _from_safetensors(source: str, path: Path, kind: str) -> WeightsFile:
    tensors, metadata = read_safetensors(path)
    return WeightsFile(source, path, kind, tensors, metadata, config_of(path, metadata))


def _from_pth(source: str, path: Path) -> WeightsFile:
    state_dict, report = convert_state_dict(load_checkpoint_file(path))
    console.print(
        f"note: converted {path.name} ({report.source_naming} naming, {report.task}, {report.config.name}) on the fly; "
        f"`hrformer convert {path}` saves it once as safetensors",
        highlight=False,
        soft_wrap=True,
    )
    return WeightsFile(source, path, "pth", state_dict, {"task": report.task}, report.config)


def _from_hub(spec: str) -> WeightsFile:
    # Imported here: huggingface_hub costs import time that local predictions should not pay.
    from .hub import check_config_matches, download

    files = download(spec)
    tensors, metadata = read_safetensors(files.weights)
    config = config_of(files.weights, metadata)
    if config is None:
        raise CheckpointError(f"{spec}: the Hub weights carry no model config; push them with `hrformer push`")
    check_config_matches(files, config)
    console.print(f"weights: {spec} at commit {files.commit}", highlight=False, soft_wrap=True)
    return WeightsFile(spec, files.weights, "hub", tensors, metadata, config, files.commit)
