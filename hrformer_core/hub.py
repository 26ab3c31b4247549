"""Weights on the Hugging Face Hub: `hf://ORG/NAME[@REVISION]` downloads and `hrformer push` uploads.

A Hub repository holds `model.safetensors` (our weights file, config in its metadata), `config.json` (the same
model config, readable without safetensors) and a model card `README.md`. Downloads go through
`hf_hub_download`, so they are cached, honour `HF_HOME`/`HF_HUB_CACHE`, and work offline from the cache with
`HF_HUB_OFFLINE=1`; the commit they resolved to is returned so outputs can pin it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .errors import CheckpointError, HRFormerError, UsageError
from .models.checkpoint import read_checkpoint
from .models.config import ModelConfig
from .models.registry import build_model
from .predict.weights import input_size_of, run_weights
from .profiling.flops import count_macs, count_params, paper_convention
from .utils.io import write_json, write_text

HF_PREFIX = "hf://"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SNAPSHOT = re.compile(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]")
PIPELINE_TAGS = {"pose": "keypoint-detection", "cls": "image-classification", "seg": "image-segmentation"}
TASK_NAMES = {
    "pose": "human pose estimation (COCO top-down)",
    "cls": "image classification",
    "seg": "semantic segmentation",
}


@dataclass(frozen=True)
class HubFiles:
    """Downloaded files of one Hub model, pinned to the commit they came from."""

    repo_id: str
    revision: str | None  # what the user asked for (branch, tag or sha); None for the default branch
    commit: str  # the resolved commit sha
    weights: Path
    config: Path


def is_hub_spec(text: str) -> bool:
    return text.startswith(HF_PREFIX)


def parse_hub_spec(text: str) -> tuple[str, str | None]:
    """`hf://ORG/NAME[@REVISION]` -> (repo id, revision or None)."""
    body = text[len(HF_PREFIX) :] if is_hub_spec(text) else text
    repo_id, _, revision = body.partition("@")
    if not REPO_ID.match(repo_id) or (body.count("@") and not revision):
        raise UsageError(f"{text!r}: expected hf://ORG/NAME or hf://ORG/NAME@REVISION (branch, tag or commit)")
    return repo_id, revision or None


def download(spec: str) -> HubFiles:
    """Fetch (or find in the cache) a Hub model's weights and config at one commit."""
    repo_id, revision = parse_hub_spec(spec)
    try:
        weights = Path(hf_hub_download(repo_id, WEIGHTS_FILE, revision=revision, library_name="hrformer"))
        commit = _commit_of(weights)
        config = Path(hf_hub_download(repo_id, CONFIG_FILE, revision=commit or revision, library_name="hrformer"))
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        what = "revision" if isinstance(exc, RevisionNotFoundError) else "repository"
        raise CheckpointError(f"{spec}: {what} not found on the Hub (private repos need `hf auth login`)") from None
    except LocalEntryNotFoundError:
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else " and the Hub cannot be reached"
        raise CheckpointError(
            f"{spec}: {WEIGHTS_FILE}/{CONFIG_FILE} not in the cache {constants.HF_HUB_CACHE}{offline}; "
            "download it once online, or pass a local weights file"
        ) from None
    except EntryNotFoundError:
        raise CheckpointError(
            f"{spec}: the repository has no {WEIGHTS_FILE} or {CONFIG_FILE}; push it with `hrformer push`"
        ) from None
    except (HfHubHTTPError, HFValidationError) as exc:
        raise CheckpointError(f"{spec}: Hub download failed ({str(exc).splitlines()[0]})") from None
    if commit is None:
        raise CheckpointError(f"{spec}: {weights} is not in the Hub cache layout (snapshots/<commit>/); cannot pin it")
    return HubFiles(repo_id, revision, commit, weights, config)


def _commit_of(path: Path) -> str | None:
    """The commit sha of a file in the cache layout `models--org--name/snapshots/<sha>/<file>`."""
    match = SNAPSHOT.search(str(path))
    return match.group(1) if match else None


def check_config_matches(files: HubFiles, metadata_config: ModelConfig) -> None:
    """A Hub model's config.json must describe the same model as the weights' own metadata."""
    try:
        sidecar = ModelConfig.from_dict(json.loads(files.config.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, UsageError) as exc:
        raise CheckpointError(f"hf://{files.repo_id}@{files.commit[:12]}: malformed {CONFIG_FILE} ({exc})") from None
    if sidecar != metadata_config:
        raise CheckpointError(
            f"hf://{files.repo_id}@{files.commit[:12]}: {CONFIG_FILE} and {WEIGHTS_FILE} describe different models"
        )


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
    lines = [
        "---",
        "library_name: hrformer",
        "license: mit",
        f"pipeline_tag: {PIPELINE_TAGS[config.task]}",
        "tags:",
        "- hrformer",
        f"- {config.name}",
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"{config.name} (High-Resolution Transformer, NeurIPS 2021) for {TASK_NAMES[config.task]}, "
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
