"""The training loop on the toy task (CPU, one process): run folders, checkpoints, exact resume, guards."""

from __future__ import annotations

import json
from pathlib import Path

import engine_toy_task
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from hrformer_core.engine import evaluate, load_recipe, train
from hrformer_core.engine.recipes import Recipe
from hrformer_core.engine.state import load_state, weights_digest
from hrformer_core.errors import CheckpointError, TrainingError, UsageError

TOY = """\
task: toy
description: toy classification for engine tests
train:
  epochs: 2
  batch_size: 4
  workers: 0
  log_interval: 3
  seed: 7
  optimizer: {lr: 0.01}
  schedule: {type: step, milestones: [1], warmup_iters: 3}
"""


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(TOY)
    return path


def toy(recipe_file: Path, *overrides: str) -> Recipe:
    return load_recipe(recipe_file, list(overrides))


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = tensors(a), tensors(b)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in rows]


def test_run_folder_is_new_each_time_and_complete(recipe_file: Path, tmp_path: Path) -> None:
    recipe = toy(recipe_file, "data.bad_val_images=2")
    first = train(recipe, project=tmp_path / "runs")
    second = train(recipe, project=tmp_path / "runs")
    assert first.run_dir == tmp_path / "runs" / "toy" / "toy"
    assert second.run_dir == tmp_path / "runs" / "toy" / "toy-2"
    run = first.run_dir
    assert load_recipe(run / "recipe.yaml") == recipe
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2] and rows[-1]["step"] == 12
    assert {"train_loss", "train_acc", "lr", "time", "accuracy"} <= rows[0].keys()
    assert rows[0]["lr"] == pytest.approx(0.01) and rows[1]["lr"] == pytest.approx(0.001)
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,train_loss,train_acc,lr,time")
    assert (run / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.bad_images == 2
    assert first.metrics["accuracy"] == rows[-1]["accuracy"] and first.epochs_completed == 2

    state = torch.load(run / "state.pt", weights_only=True)
    assert state["epoch"] == 2 and state["global_step"] == 12
    assert {"optimizer", "scheduler", "scaler", "rng", "model", "history"} <= state.keys()
    model = engine_toy_task.ToyTask().build_model(recipe)
    model.load_state_dict(tensors(run / "weights" / "last.safetensors"))
    assert weights_digest(model) == first.weights_digest
    with safe_open(str(run / "weights" / "best.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert meta["task"] == "toy" and int(meta["epoch"]) == first.best_epoch
    assert float(meta["accuracy"]) == first.best_metric == max(row["accuracy"] for row in rows)
    assert not list(run.rglob("*.tmp"))

    with pytest.raises(UsageError, match="already exists and is not empty"):
        train(recipe, run_dir=run)


@pytest.mark.parametrize("workers", [0, 2])
def test_interrupted_run_resumes_bit_identical(
    recipe_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    recipe = toy(recipe_file, f"train.workers={workers}")
    straight = train(recipe, project=tmp_path / "a")

    def interrupt(self: engine_toy_task.ToyDataset, epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt
        self.epoch = epoch

    with monkeypatch.context() as patch:
        patch.setattr(engine_toy_task.ToyDataset, "set_epoch", interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(recipe, project=tmp_path / "b")
    run = tmp_path / "b" / "toy" / "toy"
    assert load_state(run / "state.pt")["epoch"] == 1
    resumed = train(resume=run)
    assert resumed.run_dir == run and resumed.epochs_completed == 2 and resumed.global_step == 12
    assert_same_weights(
        run / "weights" / "last.safetensors", straight.run_dir / "weights" / "last.safetensors"
    )
    assert resumed.weights_digest == straight.weights_digest
    assert without_time(load_state(run / "state.pt")["history"]) == without_time(
        load_state(straight.run_dir / "state.pt")["history"]
    )


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(recipe_file: Path, tmp_path: Path) -> None:
    clean = train(toy(recipe_file, "train.epochs=1"), project=tmp_path / "clean")
    poisoned = toy(recipe_file, "data.poison_epoch=1")
    with pytest.raises(
        TrainingError, match=r"non-finite loss \(nan\) at step 7 \(epoch 2, iteration 1\)"
    ) as info:
        train(poisoned, project=tmp_path / "runs")
    run = tmp_path / "runs" / "toy" / "toy"
    assert str(run / "weights" / "last.safetensors") in str(info.value)
    assert load_state(run / "state.pt")["epoch"] == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert_same_weights(run / "weights" / "last.safetensors", clean.run_dir / "weights" / "last.safetensors")

    with pytest.raises(TrainingError, match="at step 1 .*no checkpoint had been written yet"):
        train(toy(recipe_file, "data.poison_epoch=0"), project=tmp_path / "early")


def test_time_limit_stops_between_iterations_then_evaluates_and_saves(
    recipe_file: Path, tmp_path: Path
) -> None:
    result = train(toy(recipe_file, "train.max_time_minutes=0", "train.epochs=5"), project=tmp_path)
    assert result.stopped_early and result.global_step == 1 and result.epochs_completed == 1
    assert "accuracy" in result.metrics
    state = load_state(result.run_dir / "state.pt")
    assert state["epoch"] == 1 and state["global_step"] == 1
    assert (result.run_dir / "weights" / "last.safetensors").is_file()


def test_resume_checks_the_recipe(recipe_file: Path, tmp_path: Path) -> None:
    first = train(toy(recipe_file, "train.epochs=1"), project=tmp_path)
    run = first.run_dir
    with pytest.raises(UsageError, match=r"cannot resume with a changed recipe: train\.batch_size: 4 -> 2"):
        train(load_recipe(run / "recipe.yaml", ["train.batch_size=2"]), resume=run)
    done = train(resume=run)  # nothing left to do
    assert done.epochs_completed == 1 and done.global_step == 6 and done.metrics == first.metrics
    longer = train(load_recipe(run / "recipe.yaml", ["train.epochs=2", "eval.batch_size=3"]), resume=run)
    assert longer.epochs_completed == 2 and longer.global_step == 12
    assert load_recipe(run / "recipe.yaml").train.epochs == 2
    (run / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable training state"):
        train(resume=run)
    with pytest.raises(UsageError, match="not a resumable run folder"):
        train(resume=tmp_path)


def test_evaluate_matches_training_and_checks_weights(recipe_file: Path, tmp_path: Path) -> None:
    recipe = toy(recipe_file, "train.epochs=1", "data.num_val=9")
    result = train(recipe, project=tmp_path)
    weights = result.run_dir / "weights" / "last.safetensors"
    metrics = evaluate(recipe, weights, out_dir=tmp_path / "eval").metrics
    assert metrics == pytest.approx(result.metrics)
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["metrics"]["accuracy"] == metrics["accuracy"]
    assert len(json.loads((tmp_path / "eval" / "predictions.json").read_text())) == 9
    # The weights describe their model: a recipe asking for another width still evaluates the trained one.
    wider = evaluate(toy(recipe_file, "data.num_val=9", "model.width=5"), weights, out_dir=tmp_path / "eval2").metrics
    assert wider["accuracy"] == metrics["accuracy"]
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(Path(weights).read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated.safetensors: not a readable safetensors file"):
        evaluate(toy(recipe_file), truncated, out_dir=tmp_path / "eval3")


def test_bf16_autocast_on_cpu_and_gradient_clipping(recipe_file: Path, tmp_path: Path) -> None:
    result = train(
        toy(recipe_file, "train.amp=bf16", "train.grad_clip=0.5", "train.epochs=1"), project=tmp_path
    )
    weights = tensors(result.run_dir / "weights" / "last.safetensors")
    assert all(t.dtype in (torch.float32, torch.int64) for t in weights.values())
    assert result.global_step == 6
