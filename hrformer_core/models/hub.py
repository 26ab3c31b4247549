"""Weights on the Hugging Face Hub, download side: `hf://ORG/NAME[@REVISION]` (uploads: `hrformer_core.hub`).

A Hub repository holds `model.safetensors` (our weights file, config in its metadata), `config.json` (the same
model config, readable without safetensors) and a model card `README.md`. Downloads go through
`hf_hub_download`, so they are cached, honour `HF_HOME`/`HF_HUB_CACHE`, and work offline from the cache with
`HF_HUB_OFFLINE=1`; the commit they resolved to is returned so outputs can pin it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..errors import CheckpointError, UsageError
from .config import ModelConfig

HF_PREFIX = "hf://"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SNAPSHOT = re.compile(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]")


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
