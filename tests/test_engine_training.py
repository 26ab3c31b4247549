"""The training loop on the toy task (CPU, one process): run folders, step-sized runs, checkpoints, exact resume
(mid-epoch too), the time limit and its early warning, guards."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import engine_toy_task
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from training_helpers import count_loss_calls
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core.engine import evaluate, load_recipe, train
from hrformer_core.engine.progress import Projection, over_budget
from hrformer_core.engine.recipes import Recipe, schema_for
from hrformer_core.engine.schema import lookup
from hrformer_core.engine.state import load_state, weights_digest
from hrformer_core.engine.steplog import StepLog, read_steps_csv
from hrformer_core.errors import CheckpointError, TrainingError, UsageError
from hrformer_core.tasks import get_task

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
    return [{k: v for k, v in row.items() if k not in ("time", "elapsed")} for row in rows]


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
    assert {"train_loss", "train_acc", "lr", "time", "elapsed", "accuracy"} <= rows[0].keys()
    assert 0 < rows[0]["elapsed"] < rows[1]["elapsed"]
    assert rows[0]["lr"] == pytest.approx(0.01) and rows[1]["lr"] == pytest.approx(0.001)
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,step,train_loss,train_acc,lr,time")
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


def interrupt_at_step(patch: pytest.MonkeyPatch, step: int) -> None:
    """Make the toy task's loss raise KeyboardInterrupt (as Ctrl-C would) at optimiser step `step`."""
    count_loss_calls(patch, engine_toy_task.ToyTask, interrupt_at=step)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("where", ["epoch end", "mid-epoch"])
def test_interrupted_run_resumes_bit_identical(
    recipe_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, where: str
) -> None:
    """Killed after a checkpoint, at an epoch's end or (checkpoint every 4 steps) in the middle of epoch 2."""
    recipe = toy(recipe_file, f"train.workers={workers}", "train.checkpoint_interval_steps=4")
    straight = train(recipe, project=tmp_path / "a")

    def interrupt(self: engine_toy_task.ToyDataset, epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt
        self.epoch = epoch

    with monkeypatch.context() as patch:
        if where == "epoch end":
            patch.setattr(engine_toy_task.ToyDataset, "set_epoch", interrupt)
        else:  # step 11 is epoch 2's fifth; the last checkpoint is step 8, after its second batch
            interrupt_at_step(patch, 11)
        with pytest.raises(KeyboardInterrupt):
            train(recipe, project=tmp_path / "b")
    run = tmp_path / "b" / "toy" / "toy"
    saved = load_state(run / "state.pt")
    expected = (1, 0, 6) if where == "epoch end" else (1, 2, 8)
    assert (saved["epoch"], saved["epoch_step"], saved["global_step"]) == expected
    before = load_state(run / "state.pt")["history"][-1]["elapsed"]
    resumed = train(resume=run)
    assert resumed.run_dir == run and resumed.epochs_completed == 2 and resumed.global_step == 12
    # Wall time runs on from the interrupted session's instead of starting again at zero.
    elapsed = [row["elapsed"] for row in load_state(run / "state.pt")["history"]]
    assert elapsed == sorted(elapsed) and elapsed[-1] > before > 0
    assert_same_weights(
        run / "weights" / "last.safetensors", straight.run_dir / "weights" / "last.safetensors"
    )
    assert resumed.weights_digest == straight.weights_digest
    assert without_time(load_state(run / "state.pt")["history"]) == without_time(
        load_state(straight.run_dir / "state.pt")["history"]
    )
    # Every step's loss and lr too (not the seconds column, which is wall time).
    ours, theirs = read_steps_csv(run / "steps.csv"), read_steps_csv(straight.run_dir / "steps.csv")
    assert ours.columns == theirs.columns and len(ours) == 12
    for column in ours.columns[:-1]:
        assert ours.column(column) == theirs.column(column), column


def test_weights_do_not_depend_on_the_number_of_workers(recipe_file: Path, tmp_path: Path) -> None:
    """Batches carry their own seeds, so a machine whose cores cap train.workers trains the same model."""
    digests = {train(toy(recipe_file, f"train.workers={n}"), project=tmp_path / str(n)).weights_digest for n in (0, 2)}
    assert len(digests) == 1


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


def test_max_steps_trains_exactly_that_many_steps_across_epochs(recipe_file: Path, tmp_path: Path) -> None:
    """15 steps at 6 per epoch: two epochs and half of a third, cosine over exactly 15, evaluation every 4."""
    schedule = ["type=cosine", "warmup_iters=3", "warmup_ratio=0.1", "min_lr=0.0001"]
    recipe = toy(
        recipe_file, "train.max_steps=15", "train.eval_interval_steps=4", *(f"train.schedule.{s}" for s in schedule)
    )
    result = train(recipe, project=tmp_path)
    run = result.run_dir
    assert (result.global_step, result.total_steps, result.epochs_completed) == (15, 15, 2)
    assert not result.stopped_early and result.note == ""

    steps = read_steps_csv(run / "steps.csv")
    assert steps.columns == ["step", "epoch", "train_loss", "train_acc", "lr", "seconds"]
    assert steps.column("step") == list(range(1, 16))
    assert steps.column("epoch") == [1] * 6 + [2] * 6 + [3] * 3

    def by_hand(step: int) -> float:  # the lr of optimiser step `step` (0-based)
        cosine = 1e-4 + (0.01 - 1e-4) * (1 + math.cos(math.pi * step / 15)) / 2
        return cosine * (0.1 + 0.9 * step / 3) if step < 3 else cosine

    assert steps.column("lr") == pytest.approx([by_hand(k) for k in range(15)], rel=1e-9)
    assert steps.column("lr")[0] == pytest.approx(0.001) and steps.column("lr")[-1] < 3e-4

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(row["epoch"], row["step"]) for row in rows] == [(1, 4), (1, 6), (2, 8), (2, 12), (3, 15)]
    assert ["accuracy" in row for row in rows] == [True, False, True, True, True]
    losses = steps.column("train_loss")
    assert rows[2]["train_loss"] == pytest.approx(sum(losses[6:8]) / 2, rel=1e-12)  # steps 7 and 8
    assert rows[4]["train_loss"] == pytest.approx(sum(losses[12:]) / 3, rel=1e-12)

    state = load_state(run / "state.pt")
    assert (state["epoch"], state["epoch_step"], state["global_step"]) == (2, 3, 15)
    assert StepLog.from_state(state["steps"]).csv_text() == (run / "steps.csv").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] is True and summary["note"] is None
    assert (summary["step"], summary["total_steps"]) == (15, 15)
    assert summary["metrics"]["accuracy"] == rows[-1]["accuracy"]
    assert (run / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_time_limit_says_the_result_is_not_the_recipes_and_resume_finishes_it(
    recipe_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    straight = train(toy(recipe_file, "train.max_steps=9"), project=tmp_path / "a")
    result = train(toy(recipe_file, "train.max_steps=9", "train.max_time_minutes=0"), project=tmp_path / "b")
    run = result.run_dir
    note = (
        "stopped by the time limit (train.max_time_minutes=0) at step 1 of 9: the schedule did not finish; "
        f"this accuracy is not the result of recipe toy (finish it with --resume {run})"
    )
    assert result.stopped_early and result.note == note
    assert (result.global_step, result.total_steps, result.epochs_completed) == (1, 9, 0)
    assert "accuracy" in result.metrics
    assert note in capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] is False and summary["note"] == note
    assert (summary["step"], summary["total_steps"]) == (1, 9)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["note"] == note and last["step"] == 1 and "accuracy" in last
    state = load_state(run / "state.pt")
    assert (state["epoch"], state["epoch_step"], state["global_step"]) == (0, 1, 1)
    assert (run / "weights" / "last.safetensors").is_file()

    resumed = train(load_recipe(run / "recipe.yaml", ["train.max_time_minutes=null"]), resume=run)
    assert resumed.global_step == 9 and not resumed.stopped_early and resumed.note == ""
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] is True and summary["note"] is None
    assert resumed.weights_digest == straight.weights_digest


def test_over_budget_projection_by_hand() -> None:
    # 1 min gone, 540 steps of 1 s and 4 evaluations of 15 s to come: 11 min against 10.
    projection = Projection(elapsed=60, step_seconds=1.0, steps_left=540, evals_left=4, eval_seconds=15)
    assert projection.total == 660
    message = over_budget(projection, 10, step=10, total_steps=550)
    assert message is not None and "needs about 11.0 min" in message and "train.max_time_minutes=10" in message
    assert "stop at about step 490 of 550" in message  # 600 - 60 - 4 × 15 = 480 more steps
    assert over_budget(projection, 11, step=10, total_steps=550) is None


@pytest.mark.parametrize("minutes", [0.5, 60])
def test_projected_overrun_is_said_at_step_10(
    recipe_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    minutes: float,
) -> None:
    """Steps of at least 20 ms: 3000 of them need over a minute, so a 0.5-minute limit is reported at once."""
    original = engine_toy_task.ToyTask.loss

    def slow_loss(self: engine_toy_task.ToyTask, model: torch.nn.Module, batch: dict) -> tuple:
        time.sleep(0.02)
        return original(self, model, batch)

    monkeypatch.setattr(engine_toy_task.ToyTask, "loss", slow_loss)
    interrupt_at_step(monkeypatch, 13)
    recipe = toy(recipe_file, "train.max_steps=3000", f"train.max_time_minutes={minutes}", "train.log_interval=1")
    with pytest.raises(KeyboardInterrupt):
        train(recipe, project=tmp_path)
    lines = capsys.readouterr().err.splitlines()
    warnings = [i for i, line in enumerate(lines) if line.startswith("warning: at ")]
    if minutes == 60:
        assert warnings == []
        return
    assert len(warnings) == 1
    line = lines[warnings[0]]
    assert "step 10/3000" in lines[warnings[0] - 1] and "step 11/3000" in lines[warnings[0] + 1]
    found = re.search(r"needs about ([\d.]+) min \(2990 more steps and (\d+) evaluation\(s\)\), more than "
                      r"train.max_time_minutes=0.5: it will stop at about step (\d+) of 3000", line)
    assert found, line
    assert float(found[1]) >= 1.0 and int(found[2]) == 3000 // 6 - 1 and 10 < int(found[3]) < 3000


def test_train_help_names_the_step_keys_and_checkpoints() -> None:
    output = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "100"}).output
    for key in ("train.max_time_minutes", "train.max_steps", "train.eval_interval_steps",
                "train.checkpoint_interval_steps"):  # fmt: skip
        assert key in output, key
    assert "Checkpoints" in output and "mid-epoch" in output
    listed = re.findall(r"^\s+((?:train|data|eval)\.[\w.]+)=", output, flags=re.MULTILINE)
    assert len(listed) >= 10
    schema = schema_for(get_task("pose"))
    for key in listed:  # every common key it lists is a real one
        lookup(schema, key)


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
