"""`hrformer push` and `--weights hf://...` without a network.

Uploads go through a stand-in for `HfApi.upload_folder` that records the files it is given. Downloads go
through the real `hf_hub_download`, offline, from a cache laid out exactly as huggingface_hub lays it out
(`models--org--name/{blobs/<sha256>, refs/<branch>, snapshots/<commit>/<file> -> ../../blobs/<sha256>}`),
which `scan_cache_dir` is asked to confirm.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from huggingface_hub import CommitInfo, HfApi, constants, scan_cache_dir
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core import load_model
from hrformer_core.errors import CheckpointError, HRFormerError, UsageError
from hrformer_core.hub import model_card, push
from hrformer_core.models import create_model
from hrformer_core.models.checkpoint import save_model
from hrformer_core.models.hub import parse_hub_spec
from hrformer_core.models.weights import resolve_weights

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
runner = CliRunner()



@pytest.fixture
def tiny_weights(tmp_path) -> Path:
    torch.manual_seed(0)
    model = create_model("hrformer-t", "pose", extra={"input_size": [64, 48]})
    return save_model(model, tmp_path / "tiny.safetensors")


@pytest.fixture
def uploads(monkeypatch) -> list[dict]:
    """Record every upload_folder call (its arguments and the files' bytes); the repo calls do nothing."""
    calls: list[dict] = []

    def upload_folder(self, *, repo_id, folder_path, revision=None, commit_message=None, **kwargs):
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        calls.append({"repo_id": repo_id, "revision": revision, "message": commit_message, "files": files})
        url = f"https://huggingface.co/{repo_id}/commit/{COMMIT}"
        return CommitInfo(commit_url=url, commit_message=commit_message, commit_description="", oid=COMMIT)

    created: list[dict] = []
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: created.append({"repo": repo_id, **kw}))
    monkeypatch.setattr(HfApi, "create_branch", lambda self, repo_id, **kw: created.append({"branch": kw["branch"]}))
    calls.append({"created": created})
    return calls


def populate_cache(cache: Path, repo_id: str, files: dict[str, bytes], commit: str, ref: str = "main") -> Path:
    """Lay files out as huggingface_hub's cache does after downloading them at `commit` through `ref`."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / digest).write_bytes(data)
        (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / digest)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return repo


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_parse_hub_spec():
    assert parse_hub_spec("hf://org/name") == ("org/name", None)
    assert parse_hub_spec("hf://org/name@v1.0") == ("org/name", "v1.0")
    assert parse_hub_spec(f"hf://org/name@{COMMIT}") == ("org/name", COMMIT)
    for bad in ("hf://name", "hf://org/name@", "hf://org/a/b", "hf:///name"):
        with pytest.raises(UsageError, match="expected hf://ORG/NAME"):
            parse_hub_spec(bad)


def test_push_uploads_weights_config_and_card(tiny_weights, uploads):
    summary = push(tiny_weights, "org/tiny-pose", private=True)
    created, call = uploads[0]["created"], uploads[1]
    assert created == [{"repo": "org/tiny-pose", "private": True, "exist_ok": True}]
    assert call["repo_id"] == "org/tiny-pose" and call["revision"] is None
    assert set(call["files"]) == {"model.safetensors", "config.json", "README.md"}
    assert call["files"]["model.safetensors"] == tiny_weights.read_bytes()
    config = load_model(tiny_weights).config
    assert json.loads(call["files"]["config.json"]) == config.to_dict()
    card = call["files"]["README.md"].decode()
    assert card.startswith("---\nlibrary_name: hrformer\n") and "pipeline_tag: keypoint-detection" in card
    params = sum(p.numel() for p in load_model(tiny_weights).parameters())
    assert f"| parameters | {params / 1e6:.2f} M |" in card
    assert "| task | pose |" in card and "| variant | hrformer-t |" in card and "| input size (HxW) | 64x48 |" in card
    assert "GMACs at 64x48" in card and "hf://org/tiny-pose" in card
    assert summary["commit"] == COMMIT and summary["params"] == params


def test_push_run_folder_puts_its_metrics_on_the_card(tiny_weights, uploads):
    run = tiny_weights.parent / "run"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "best.safetensors").write_bytes(tiny_weights.read_bytes())
    (run / "metrics.jsonl").write_text(
        json.dumps({"epoch": 1, "AP": 0.1}) + "\n" + json.dumps({"epoch": 2, "AP": 0.25}) + "\n"
    )
    push(run, "org/from-run", revision="exp-1")
    call = uploads[1]
    assert uploads[0]["created"][-1] == {"branch": "exp-1"} and call["revision"] == "exp-1"
    card = call["files"]["README.md"].decode()
    assert "| AP | 0.25 |" in card and "| epoch | 2 |" in card
    (run / "eval.json").write_text(json.dumps({"metrics": {"AP": 0.731, "AR": 0.78}}))
    push(run, "org/from-run")
    card = uploads[2]["files"]["README.md"].decode()
    assert "| AP | 0.731 |" in card and "| AR | 0.78 |" in card and "epoch" not in card


def test_push_refuses_what_it_cannot_push(tmp_path, uploads):
    with pytest.raises(UsageError, match="expected ORG/NAME"):
        push(tmp_path, "just-a-name")
    pth = tmp_path / "official.pth"
    pth.write_bytes(b"x")
    with pytest.raises(UsageError, match="convert .pth files with `hrformer convert`"):
        push(pth, "org/name")
    with pytest.raises(CheckpointError, match="run folder without weights/best.safetensors"):
        push(tmp_path, "org/name")
    assert len(uploads) == 1  # nothing was uploaded


def test_round_trip_through_the_offline_cache(tiny_weights, uploads, offline_cache):
    push(tiny_weights, "org/tiny-pose")
    files = uploads[1]["files"]
    populate_cache(offline_cache, "org/tiny-pose", files, COMMIT)
    (repo,) = scan_cache_dir(offline_cache).repos  # huggingface_hub recognises the layout
    assert repo.repo_id == "org/tiny-pose" and {r.commit_hash for r in repo.revisions} == {COMMIT}

    loaded = resolve_weights("hf://org/tiny-pose")
    assert loaded.kind == "hub" and loaded.hub_commit == COMMIT
    assert loaded.provenance()["hub_commit"] == COMMIT
    original = load_model(tiny_weights)
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(load_model("hf://org/tiny-pose")(x), original(x), rtol=0, atol=0)
    assert resolve_weights(f"hf://org/tiny-pose@{COMMIT}").hub_commit == COMMIT


def test_revisions_resolve_to_their_commit(tiny_weights, uploads, offline_cache):
    push(tiny_weights, "org/two")
    files = uploads[1]["files"]
    populate_cache(offline_cache, "org/two", files, COMMIT, ref="main")
    other = create_model("hrformer-t", "pose", num_keypoints=5, extra={"input_size": [64, 48]})
    other_file = save_model(other, tiny_weights.parent / "other.safetensors")
    repo = offline_cache / "models--org--two"
    snapshot = repo / "snapshots" / OTHER_COMMIT
    snapshot.mkdir()
    for name, data in {
        "model.safetensors": other_file.read_bytes(),
        "config.json": json.dumps(other.config.to_dict()).encode(),
    }.items():
        digest = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / digest).write_bytes(data)
        (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / digest)
    (repo / "refs" / "v2").write_text(OTHER_COMMIT)
    assert resolve_weights("hf://org/two").config.num_keypoints == 17
    v2 = resolve_weights("hf://org/two@v2")
    assert v2.config.num_keypoints == 5 and v2.hub_commit == OTHER_COMMIT


def test_hub_errors_are_clear(tiny_weights, uploads, offline_cache):
    with pytest.raises(CheckpointError, match=r"hf://org/absent: .* not in the cache .*HF_HUB_OFFLINE is set"):
        resolve_weights("hf://org/absent")
    push(tiny_weights, "org/mismatch")
    files = dict(uploads[1]["files"])
    config = json.loads(files["config.json"])
    config["num_keypoints"] = 5
    files["config.json"] = json.dumps(config).encode()
    populate_cache(offline_cache, "org/mismatch", files, COMMIT)
    with pytest.raises(CheckpointError, match="config.json and model.safetensors describe different models"):
        resolve_weights("hf://org/mismatch")


def test_model_card_without_metrics_has_no_metrics_section():
    config = create_model("hrformer-t", "cls").config
    card = model_card(config, "org/c", 8_040_000, 1.83e9, (224, 224), {})
    assert "pipeline_tag: image-classification" in card and "| parameters | 8.04 M |" in card
    assert "| 1.83 |" in card and "## Metrics" not in card


def test_cli_push_and_offline_predict_pin_the_commit(tiny_weights, uploads, tmp_path):
    result = runner.invoke(app, ["push", str(tiny_weights), "org/cli-pose", "--private"])
    assert result.exit_code == 0, result.output
    assert COMMIT in result.output and "hf://org/cli-pose" in result.output
    home = tmp_path / "hf-home"
    populate_cache(home / "hub", "org/cli-pose", uploads[1]["files"], COMMIT)

    image = tmp_path / "person.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (80, 60, 3), dtype=np.uint8))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "hrformer_cli", "predict", str(image), "--weights", "hf://org/cli-pose"]
    command += ["--project", str(tmp_path / "runs"), "--name", "hub"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads((tmp_path / "runs" / "hub" / "run.json").read_text())
    assert run["weights"]["hub_commit"] == COMMIT and run["weights"]["source"] == "hf://org/cli-pose"
    assert COMMIT in done.stdout + done.stderr

    missing = subprocess.run(
        [*command[:6], "hf://org/never-downloaded"], env=env, capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2 and "not in the cache" in missing.stderr and "Traceback" not in missing.stderr


def test_push_failure_is_one_clear_error(tiny_weights, monkeypatch):
    def refuse(self, repo_id, **kwargs):
        raise OSError("Cannot reach https://huggingface.co/api/repos/create: offline mode is enabled.")

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    with pytest.raises(HRFormerError, match=r"push to org/x failed: OSError: Cannot reach"):
        push(tiny_weights, "org/x")
