"""`hrformer eval --ms/--flip` (the task's eval keys, or its one-line refusal) and per-class tables after the
summary (seg IoU/accuracy, cls per-class accuracy) through one generic mechanism; class names in predict output."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_cli.commands import train as train_commands
from hrformer_core.engine import evaluate, load_recipe
from hrformer_core.engine.evaluation import TABLES_KEY, eval_flag_overrides, metric_tables, table_spec
from hrformer_core.errors import UsageError
from hrformer_core.models.checkpoint import save_model
from hrformer_core.tasks import get_task
from hrformer_core.tasks.seg.class_names import PASCAL_CONTEXT_CLASSES

runner = CliRunner()
RECIPE = """\
task: seg
name: tiny-context
model: {name: hrformer-t, ocr_mid_channels: 16, ocr_key_channels: 8, loss: ce}
data: {layout: pascal_context, root: ROOT, crop_size: [32, 32]}
train: {batch_size: 2, workers: 0, channels_last: false}
eval: {batch_size: 2, ms_scales: [0.75, 1.0]}
"""


def _context_tree(root: Path) -> Path:
    """Two PASCAL-Context val pairs: stored ids 0 (background, ignored), 1 aeroplane, 37 person, 59 wood."""
    rng = np.random.default_rng(0)
    for name in ("2008_000001", "2008_000002"):
        for sub, array in (
            (f"image/{name}.jpg", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)),
            (f"label/{name}.png", rng.choice([0, 1, 37, 59], (48, 64)).astype(np.uint8)),
        ):
            (root / "val" / sub).parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(root / "val" / sub), array)
    return root


@pytest.fixture(scope="module")
def context_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny recipe on the tree and the (untrained) weights of its model."""
    base = tmp_path_factory.mktemp("context")
    recipe_file = base / "tiny-context.yaml"
    recipe_file.write_text(RECIPE.replace("ROOT", str(_context_tree(base / "data"))))
    task = get_task("seg")
    recipe = load_recipe(recipe_file)
    task.configure(recipe)
    torch.manual_seed(0)
    weights = save_model(task.build_model(recipe), base / "weights.safetensors")
    return recipe_file, weights


def _eval(recipe_file: Path, weights: Path, out: Path, *flags: str) -> str:
    args = ["eval", "--recipe", str(recipe_file), "--weights", str(weights), "--out", str(out), *flags]
    outcome = runner.invoke(app, [*args, "train.workers=0"])
    assert outcome.exit_code == 0, outcome.output
    return outcome.output


def test_ms_and_flip_flags_set_the_seg_eval_keys(context_run: tuple[Path, Path], tmp_path: Path) -> None:
    recipe_file, weights = context_run
    output = _eval(recipe_file, weights, tmp_path / "flagged", "--ms", "--flip")
    saved = yaml.safe_load((tmp_path / "flagged" / "recipe.yaml").read_text())["eval"]
    assert (saved["ms"], saved["flip"]) == (True, True)
    metrics = json.loads((tmp_path / "flagged" / "metrics.json").read_text())["metrics"]
    by_keys = evaluate(
        load_recipe(recipe_file, ["eval.ms=true", "eval.flip=true", "train.workers=0"]),
        weights,
        out_dir=tmp_path / "by-keys",
    ).metrics
    assert metrics == json.loads(json.dumps(by_keys))  # the flags are those keys, nothing else

    # Per-class rows in metrics.json: the labels hold aeroplane, person and wood only, so only they have an
    # accuracy; the table after the summary shows (59 rows > SHOWN_ROWS) rows with an IoU, lowest first.
    rows = metrics["per_class"]
    assert [row["class"] for row in rows] == list(PASCAL_CONTEXT_CLASSES)
    assert [row["class"] for row in rows if row["accuracy"] is not None] == ["aeroplane", "person", "wood"]
    assert all(row["IoU"] is not None for row in rows if row["accuracy"] is not None)
    assert metrics[TABLES_KEY] == [table_spec("per-class IoU", "per_class", ["class", "IoU", "accuracy"], "IoU")]
    (table,) = metric_tables(metrics)
    ious = [row[1] for row in table.rows]
    assert ious == sorted(ious) and len(table.rows) <= 20 and "of 59 rows" in table.note
    text = " ".join(output.split())
    assert "per-class IoU" in text and table.note in text
    assert all(" ".join(row) in text.replace(" │ ", " ").replace("│", "") for row in table.rows)

    plain = tmp_path / "plain"
    _eval(recipe_file, weights, plain, "--no-ms", "--no-flip", "eval.ms=true")  # a flag beats the override
    saved = yaml.safe_load((plain / "recipe.yaml").read_text())["eval"]
    assert (saved["ms"], saved["flip"]) == (False, False)


def test_predict_names_the_classes(context_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, weights = context_run
    image = tmp_path / "scene.jpg"
    assert cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 255, (40, 52, 3), dtype=np.uint8))
    outcome = runner.invoke(app, ["predict", str(image), "-w", str(weights), "--project", str(tmp_path), "--name", "p"])
    assert outcome.exit_code == 0, outcome.output
    record = json.loads((tmp_path / "p" / "json" / "scene.jpg.json").read_text())
    assert record["class_names"].keys() == record["class_pixels"].keys()
    assert all(PASCAL_CONTEXT_CLASSES[int(i)] == name for i, name in record["class_names"].items())


def test_flags_a_task_lacks_are_refused_in_one_line(tmp_path: Path) -> None:
    outcome = runner.invoke(app, ["eval", "--recipe", "cls-quickstart", "--weights", str(tmp_path / "x"), "--flip"])
    assert outcome.exit_code == 2
    assert "error: --flip: the cls task has no such evaluation option (unknown recipe key 'eval.flip'" in " ".join(
        outcome.output.split()
    )
    assert "Traceback" not in outcome.output
    # pose's flip test is eval.flip_test: its eval schema maps --flip there; it has no multi-scale test.
    pose = load_recipe("pose-t-256")
    assert pose.eval.flip_test is True
    overrides = eval_flag_overrides(pose, {"flip": False, "ms": None})
    assert overrides == ["eval.flip_test=false"]
    assert load_recipe("pose-t-256", overrides).eval.flip_test is False
    assert eval_flag_overrides(pose, {"flip": None}) == []
    with pytest.raises(UsageError, match=r"^--ms: the pose task .*unknown recipe key 'eval.ms'"):
        eval_flag_overrides(pose, {"ms": True})


def test_flags_reach_the_torchrun_workers_as_overrides(
    context_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers parse key=value overrides only, so `--nproc 2 --ms --no-flip` hands them the keys."""
    recipe_file, weights = context_run
    launched = []
    monkeypatch.setattr(train_commands, "launch_torchrun", lambda argv, nproc: launched.append((argv, nproc)) or 0)
    args = ["eval", "--recipe", str(recipe_file), "--weights", str(weights), "--nproc", "2", "--ms", "--no-flip"]
    outcome = runner.invoke(app, [*args, "eval.batch_size=1"])
    assert outcome.exit_code == 0, outcome.output
    assert launched == [
        (["eval", "--recipe", str(recipe_file), "--weights", str(weights), "eval.batch_size=1", "eval.ms=true",
          "eval.flip=false"], 2)
    ]  # fmt: skip


def test_long_tables_show_the_lowest_and_highest_rows() -> None:
    rows = [{"name": f"c{i}", "score": float((i * 37) % 100), "n": i} for i in range(100)]
    rows[5]["score"] = None
    metrics = {"rows": rows, TABLES_KEY: [table_spec("scores", "rows", ["name", "score", "n"], "score")]}
    (table,) = metric_tables(metrics)
    # scores are a permutation of 0..99 (37 is coprime with 100); c5's 85 is missing.
    by_score = sorted((row for row in rows if row["score"] is not None), key=lambda row: row["score"])
    assert [r[0] for r in table.rows] == [r["name"] for r in by_score[:10] + by_score[-10:]]
    assert table.rows[0] == ["c0", "0.0000", "0"] and table.rows[-1][1] == "99.0000"
    assert table.gap_after == 10
    assert table.note == (
        "the 10 lowest and 10 highest score of 100 rows (1 without one left out); "
        "all rows are under 'rows' in the metrics"
    )
    short = {"rows": rows[:3], TABLES_KEY: metrics[TABLES_KEY]}
    assert [r[0] for r in metric_tables(short)[0].rows] == ["c0", "c1", "c2"]  # short: all, in order
    assert metric_tables({"mIoU": 0.5}) == []


def test_cls_per_class_accuracy_shows_through_the_same_tables(tmp_path: Path) -> None:
    """1000 classes, two samples each: classes 0-499 get both right (100 %), 500-999 one of two (50 %)."""
    labels = np.repeat(np.arange(1000), 2)
    predictions = []
    for i, label in enumerate(labels):
        top1 = label if i % 2 == 0 or label < 500 else (label + 1) % 1000
        ranked = np.array([top1, *[(top1 + k) % 1000 for k in range(1, 5)]])
        predictions.append({"ranked": ranked, "label": int(label), "loss": 0.0})

    class Folder:
        num_classes = 1000
        classes = [f"n{i:08d}" for i in range(1000)]
        class_names = [f"name {i}" for i in range(1000)]
        image_dir = tmp_path

    task = get_task("cls")
    task.configure(load_recipe("cls-quickstart"))
    metrics = task.compute_metrics(predictions, Folder(), tmp_path)
    (table,) = metric_tables(metrics)
    assert table.columns == ["name", "top1", "samples"]
    assert [row[0] for row in table.rows] == [f"name {i}" for i in (*range(500, 510), *range(490, 500))]
    assert table.rows[0][1:] == ["50.0000", "2"] and table.rows[-1][1:] == ["100.0000", "2"]
    assert table.gap_after == 10 and "of 1000 rows" in table.note
