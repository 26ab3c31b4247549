"""Multi-process training through the real torchrun launch path (2 CPU processes, gloo), and DDP helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import engine_toy_task
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from hrformer_core.engine import evaluate, launch_torchrun, load_recipe
from hrformer_core.engine.distributed import read_statuses, revert_sync_batchnorm
from hrformer_core.engine.state import load_state, weights_digest
from hrformer_core.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
TOY = """\
task: toy
train:
  epochs: 2
  batch_size: 4
  workers: 0
  log_interval: 2
  optimizer: {lr: 0.01}
data:
  num_val: 9
"""


@pytest.fixture
def plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes find the package and import the toy task plug-in."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("HRFORMER_PLUGINS", "engine_toy_task")


@pytest.mark.slow
def test_two_processes_train_in_sync_and_only_rank0_writes(tmp_path: Path, plugin_env: None) -> None:
    recipe_file = tmp_path / "toy.yaml"
    recipe_file.write_text(TOY)
    project, status_dir = tmp_path / "runs", tmp_path / "status"
    argv = ["train", "--recipe", str(recipe_file), "--project", str(project), "--device", "cpu"]
    assert launch_torchrun(argv, nproc=2, status_dir=status_dir) == 0

    statuses = read_statuses(status_dir)
    assert [s["rank"] for s in statuses] == [0, 1] and all(s["ok"] for s in statuses)
    run = project / "toy" / "toy"
    assert {s["run_dir"] for s in statuses} == {str(run)}
    assert statuses[0]["weights_digest"] == statuses[1]["weights_digest"]  # gradients were averaged

    assert [p.name for p in (project / "toy").iterdir()] == ["toy"]
    written = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    assert written == [
        "eval/predictions.json",
        "metrics.csv",
        "metrics.jsonl",
        "recipe.yaml",
        "results.png",
        "state.pt",
        "steps.csv",
        "summary.json",
        "weights/best.safetensors",
        "weights/last.safetensors",
    ]
    state = load_state(run / "state.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert state["global_step"] == 6  # 24 samples / 2 ranks / batch 4 = 3 steps per epoch

    recipe = load_recipe(run / "recipe.yaml")
    model = engine_toy_task.ToyTask().build_model(recipe)
    model.load_state_dict(load_file(str(run / "weights" / "last.safetensors")))
    assert weights_digest(model) == statuses[0]["weights_digest"]

    # the sharded evaluation (9 samples over 2 ranks, one padded) equals a single-process one
    single = evaluate(recipe, run / "weights" / "last.safetensors", out_dir=tmp_path / "single").metrics
    assert statuses[0]["metrics"] == pytest.approx(single)
    assert json.loads((run / "eval" / "predictions.json").read_text()) == json.loads(
        (tmp_path / "single" / "predictions.json").read_text()
    )


@pytest.mark.slow
def test_failing_ranks_are_reported_with_their_exit_code(
    tmp_path: Path, plugin_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe_file = tmp_path / "toy.yaml"
    recipe_file.write_text(TOY)
    argv = ["train", "--recipe", str(recipe_file), "--project", str(tmp_path), "train.epoch=3"]
    assert launch_torchrun(argv, nproc=2, status_dir=tmp_path / "status") == 2
    statuses = read_statuses(tmp_path / "status")
    assert [s["exit_code"] for s in statuses] == [2, 2]
    assert "did you mean train.epochs" in statuses[0]["error"]
    assert (
        "rank 0 failed (exit code 2): UsageError: unknown recipe key 'train.epoch'" in capsys.readouterr().err
    )


def test_launch_checks_its_arguments() -> None:
    with pytest.raises(UsageError, match="master_addr: required"):
        launch_torchrun(["train"], nproc=2, nnodes=2)
    with pytest.raises(UsageError, match="expected integers >= 1"):
        launch_torchrun(["train"], nproc=0)


def test_sync_batchnorm_reverts_to_plain_batchnorm_outside_a_process_group() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.SyncBatchNorm(4), nn.Sequential(nn.SyncBatchNorm(4)))
    with torch.no_grad():
        model[1].weight.fill_(2.0)
        model[1].running_mean.fill_(0.5)
    reverted = revert_sync_batchnorm(model)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in reverted.modules())
    assert torch.equal(reverted[1].weight, torch.full((4,), 2.0))
    assert torch.equal(reverted[1].running_mean, torch.full((4,), 0.5))
    assert reverted(torch.randn(2, 3, 5, 5)).shape == (2, 4, 5, 5)
