"""Tasks plug in as packages: no task-name switches outside them, the core never imports the CLI, and the
toy task (tests/engine_toy_task.py, not an HRFormer model) trains, evaluates and predicts through the same
engine, evaluation and prediction paths as pose."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import cv2
import engine_toy_task  # noqa: F401  (registers the "toy" task)
import numpy as np
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "hrformer_core"
TASK_NAMES = ("pose", "seg", "cls")
TOY = """\
task: toy
description: toy classification
train: {epochs: 1, batch_size: 4, workers: 0, log_interval: 3, seed: 7, optimizer: {lr: 0.01}}
"""
runner = CliRunner()


def _task_name_comparisons(path: Path, root: Path = ROOT) -> list[str]:
    """`x == "pose"`, `"seg" != y`, `x in ("pose", ...)` and match-case on task names in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operand in operands:
                values = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
                if any(isinstance(v, ast.Constant) and v.value in TASK_NAMES for v in values):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
        elif isinstance(node, ast.match_case) and isinstance(node.pattern, ast.MatchValue):
            value = node.pattern.value
            if isinstance(value, ast.Constant) and value.value in TASK_NAMES:
                found.append(f"{path.relative_to(root)}:{node.pattern.lineno}")
    return found


def test_no_task_name_switches_outside_the_task_packages() -> None:
    files = [p for p in (*CORE.rglob("*.py"), *(ROOT / "hrformer_cli").rglob("*.py")) if "tasks" not in p.parts]
    assert files, "found no source files"
    offenders = [hit for path in files for hit in _task_name_comparisons(path)]
    assert offenders == []


def test_the_switch_finder_finds_switches(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('if task == "pose":\n    pass\nok = kind in ("seg", "x")\nif "cls" != t:\n    pass\n')
    assert len(_task_name_comparisons(sample, tmp_path)) == 3


def test_core_never_imports_the_cli() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+hrformer_cli\b", re.M)
    importing = [str(p.relative_to(ROOT)) for p in CORE.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert importing == []


def test_get_task_returns_a_fresh_object_each_time() -> None:
    first, second = get_task("pose"), get_task("pose")
    assert first is not second and type(first) is type(second)
    first.custom_state = 1
    assert not hasattr(get_task("pose"), "custom_state")


def test_toy_task_trains_evaluates_and_predicts_through_the_cli(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HRFORMER_PLUGINS", "engine_toy_task")
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY)
    trained = runner.invoke(app, ["train", "--recipe", str(recipe), "--project", str(tmp_path / "runs")])
    assert trained.exit_code == 0, trained.output
    run = tmp_path / "runs" / "toy" / "toy"
    assert (run / "weights" / "last.safetensors").is_file()

    evaluated = runner.invoke(
        app, ["eval", "--recipe", str(recipe), "--weights", str(run), "--out", str(tmp_path / "eval")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert 0.0 <= json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]["accuracy"] <= 1.0

    images = tmp_path / "images"
    images.mkdir()
    for index in range(3):
        assert cv2.imwrite(str(images / f"{index}.png"), np.full((16, 16, 3), 60 * index, np.uint8))
    predicted = runner.invoke(
        app, ["predict", str(images), "-w", str(run), "--project", str(tmp_path), "--name", "p"]
    )
    assert predicted.exit_code == 0, predicted.output
    records = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert sorted(r["file_name"] for r in records) == ["0.png", "1.png", "2.png"]
    assert all(r["label"] in (0, 1, 2) for r in records)  # the toy recipe's 3 classes
    assert json.loads((tmp_path / "p" / "run.json").read_text())["summary"]["labelled"] == 3
    assert cv2.imread(str(tmp_path / "p" / "vis" / "1.png")).shape == (16, 16, 3)

    # A task-specific option of another task is refused, naming the task.
    refused = runner.invoke(app, ["predict", str(images), "-w", str(run), "--topk", "3", "--no-save"])
    assert refused.exit_code == 2 and "--topk: not an option for toy models" in refused.output


def test_training_ends_with_the_commands_for_its_run_and_weights_last_finds_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HRFORMER_PLUGINS", "engine_toy_task")
    monkeypatch.chdir(tmp_path)  # `last` looks under ./runs
    (tmp_path / "toy.yaml").write_text(TOY)
    for _ in range(2):
        trained = runner.invoke(app, ["train", "--recipe", "toy.yaml"])
        assert trained.exit_code == 0, trained.output
    second = Path("runs") / "toy" / "toy-2"
    lines = trained.output.splitlines()
    assert f"run folder: {second}" in lines
    assert f"evaluate:   hrformer eval --recipe {second / 'recipe.yaml'} --weights {second}" in lines
    evaluated = runner.invoke(app, ["eval", "--recipe", str(second / "recipe.yaml"), "--weights", "last"])
    assert evaluated.exit_code == 0, evaluated.output
    assert f"weights: last = {second}" in evaluated.output
    cv2.imwrite("image.png", np.zeros((8, 8, 3), np.uint8))
    predicted = runner.invoke(app, ["predict", "image.png", "--weights", "last", "--no-save"])
    assert predicted.exit_code == 0 and f"weights: last = {second}" in predicted.output
    monkeypatch.chdir(tmp_path / "runs")
    missing = runner.invoke(app, ["predict", str(tmp_path / "image.png"), "--weights", "last"])
    assert missing.exit_code == 2 and "no run folder with weights" in missing.output
