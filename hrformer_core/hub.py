"""`hrformer push`: a weights file or run folder as a Hugging Face Hub model (downloads: `models.hub`).

A Hub repository holds `model.safetensors` (our weights file, config in its metadata), `config.json` (the same
model config, readable without safetensors) and a model card `README.md`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi

from .errors import CheckpointError, HRFormerError, UsageError
from .models.checkpoint import read_checkpoint
from .models.config import ModelConfig
from .models.hub import CONFIG_FILE, REPO_ID, WEIGHTS_FILE
from .models.registry import build_model
from .models.weights import input_size_of, run_weights
from .profiling.flops import count_macs, count_params, paper_convention
from .tasks import get_task
from .utils.io import write_json, write_text

CARD_FILE = "README.md"


def run_metrics(folder: Path) -> dict[str, float]:
    """Numbers to show on the card: eval.json if the run was evaluated, else the last metrics.jsonl record."""
    record: Mapping[str, Any] = {}
    eval_file, log_file = folder / "eval.json", folder / "metrics.jsonl"
    try:
        if eval_file.is_file():
            record = json.loads(eval_file.read_text(encoding="utf-8"))
        elif log_file.is_file():
            lines = [line for line in log_file.read_text(encoding="utf-8").splitlines() if line.strip()]
            record = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{folder}: malformed eval.json or metrics.jsonl ({exc})") from None
    if isinstance(record, Mapping) and isinstance(record.get("metrics"), Mapping):
        record = record["metrics"]
    if not isinstance(record, Mapping):
        return {}
    return {k: float(v) for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def model_card(
    config: ModelConfig,
    repo_id: str,
    params: int,
    macs: float,
    input_size: tuple[int, int],
    metrics: Mapping[str, float],
) -> str:
    """README.md for the Hub: front matter for search, then what the model is and how to run it."""
    size = f"{input_size[0]}x{input_size[1]}"
    task = get_task(config.task)
    lines = [
        "---",
        "library_name: hrformer",
        "license: mit",
        f"pipeline_tag: {task.hub_pipeline_tag}",
        "tags:",
        "- hrformer",
        f"- {config.name}",
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"{config.name} (High-Resolution Transformer, NeurIPS 2021) for {task.description}, "
        "trained or converted with the `hrformer` toolkit.",
        "",
        "| | |",
        "|---|---|",
        f"| task | {config.task} |",
        f"| variant | {config.name} |",
        f"| input size (HxW) | {size} |",
        f"| parameters | {params / 1e6:.2f} M |",
        f'| GMACs at {size} (the paper\'s "GFLOPs", {paper_convention(config.task)} counting) | {macs / 1e9:.2f} |',
    ]
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4g} |" for name, value in metrics.items()]
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        f"hrformer predict image.jpg --weights hf://{repo_id}",
        "```",
        "",
        f"`{WEIGHTS_FILE}` holds the weights with the model config in its metadata; "
        f"`{CONFIG_FILE}` is the same config.",
        "",
    ]
    return "\n".join(lines)


def prepare_folder(source: str | os.PathLike, folder: Path, repo_id: str) -> dict[str, Any]:
    """Write model.safetensors, config.json and README.md for `source` (weights file or run folder) into `folder`."""
    source = Path(source)
    if source.is_dir():
        weights, metrics = run_weights(source), run_metrics(source)
    elif source.suffix == ".safetensors":
        weights, metrics = source, {}
    elif source.exists():
        raise UsageError(
            f"{source}: expected our .safetensors weights or a run folder; convert .pth files with `hrformer convert`"
        )
    else:
        raise UsageError(f"{source}: no such weights file or run folder")
    _, config, metadata = read_checkpoint(weights)
    input_size = input_size_of(config, metadata)
    with torch.device("meta"):  # parameter count without allocating the weights
        params = count_params(build_model(config))["total"]
    macs = count_macs(config, input_size, paper_convention(config.task))
    shutil.copyfile(weights, folder / WEIGHTS_FILE)
    write_json(folder / CONFIG_FILE, config.to_dict())
    write_text(folder / CARD_FILE, model_card(config, repo_id, params, macs, input_size, metrics))
    return {"weights": str(weights), "task": config.task, "variant": config.name, "params": params, "macs": macs}


def push(
    source: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """Upload a weights file or run folder as a Hub model; returns what was pushed and the commit."""
    if not REPO_ID.match(repo_id):
        raise UsageError(f"repository {repo_id!r}: expected ORG/NAME")
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="hrformer-push-") as tmp:
        summary = prepare_folder(source, Path(tmp), repo_id)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision is not None:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=tmp,
                revision=revision,
                commit_message=f"Upload {summary['variant']} ({summary['task']}) with hrformer",
            )
        except Exception as exc:  # HTTP, auth and transport errors differ across huggingface_hub versions
            reason = str(exc).splitlines()[0] if str(exc) else ""
            raise HRFormerError(f"push to {repo_id} failed: {type(exc).__name__}: {reason}") from exc
    summary.update(repo_id=repo_id, revision=revision, commit=commit.oid, url=commit.commit_url)
    return summary
