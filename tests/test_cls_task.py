"""The classification task end to end: the ImageNet folder layout (corrupt and empty-class cases), top-k and
per-class accuracy by hand, weight-decay groups, a few training steps through the engine, `hrformer eval`, and
an official checkpoint converted and evaluated."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core.engine import evaluate, load_recipe, train
from hrformer_core.errors import DataError
from hrformer_core.evaluation.classification import per_class_accuracy, ranked_accuracy
from hrformer_core.tasks import get_task
from hrformer_core.tasks.cls.folder import ImageFolder
from hrformer_core.tasks.cls.synthetic import render
from tests.fixtures import reference_state_dict

runner = CliRunner()
TINY = ["data.input_size=[32,32]", "train.workers=0", "eval.batch_size=8"]


def write_tree(root: Path, classes: int = 3, per_class: int = 2, size: int = 40) -> None:
    """train/ and val/ with shapes images of `classes` synthetic classes, and a classes.txt."""
    for split in ("train", "val"):
        for label in range(classes):
            folder = root / split / f"n{label:08d}"
            folder.mkdir(parents=True)
            rng = np.random.default_rng([label, len(split)])
            for i in range(per_class):
                cv2.imwrite(str(folder / f"{i}.JPEG"), render(label, rng, size))
    names = {0: "disc one", 2: "square one"}
    (root / "classes.txt").write_text("".join(f"n{k:08d} {v}\n" for k, v in names.items() if k < classes))


def test_topk_and_per_class_accuracy_by_hand() -> None:
    ranked = np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0], [1, 0, 2]])
    labels = np.array([0, 0, 0, 1])
    # top-1: samples 0 and 3 right; top-2: 0, 1 (0 second), 3
    assert ranked_accuracy(ranked, labels, (1, 2)) == {"top1": 50.0, "top2": 75.0}
    accuracy, counts = per_class_accuracy(ranked[:, 0], labels, 3)
    assert counts.tolist() == [3, 1, 0]
    assert accuracy[0] == pytest.approx(100 / 3) and accuracy[1] == 100.0 and np.isnan(accuracy[2])


def test_folder_layout_classes_names_and_a_corrupt_jpeg(tmp_path: Path) -> None:
    write_tree(tmp_path)
    corrupt = tmp_path / "val" / "n00000001" / "1.JPEG"
    corrupt.write_bytes(corrupt.read_bytes()[: len(corrupt.read_bytes()) // 2])
    dataset = ImageFolder(tmp_path, "val", lambda image, rng: np.zeros((3, 4, 4), np.float32),
                          replace_unreadable=False, max_bad_fraction=0.5)  # fmt: skip
    assert dataset.classes == ["n00000000", "n00000001", "n00000002"]
    assert dataset.class_names == ["disc one", "n00000001", "square one"]
    assert dataset.labels.tolist() == [0, 0, 1, 1, 2, 2]
    sample = dataset[3]
    assert not sample["readable"] and "truncated" in dataset.bad_images[str(corrupt)]
    assert dataset.unreadable_indices(dataset.bad_images) == {3}
    train_set = ImageFolder(tmp_path / "", "val", lambda image, rng: np.zeros((3, 4, 4), np.float32),
                            max_bad_fraction=0.5)  # fmt: skip
    assert train_set[3]["index"] == 4  # replaced by the next readable image


def test_missing_split_and_empty_class_folder_say_so(tmp_path: Path) -> None:
    write_tree(tmp_path)
    with pytest.raises(DataError, match=r"test: no test split \(expected the ImageNet folder layout"):
        ImageFolder(tmp_path, "test", lambda image, rng: image)
    (tmp_path / "val" / "n00000001").rename(tmp_path / "val-kept")
    (tmp_path / "val" / "n00000001").mkdir()
    with pytest.raises(DataError, match=r"n00000001: an empty class folder"):
        ImageFolder(tmp_path, "val", lambda image, rng: image)


def test_weight_decay_spares_norms_biases_and_position_tables() -> None:
    task = get_task("cls")
    recipe = load_recipe("cls-t", ["model.num_classes=10"])
    model = task.build_model(recipe)
    decay, exempt = task.param_groups(model, recipe)
    names = {id(p): n for n, p in model.named_parameters()}
    exempt_names = [names[id(p)] for p in exempt["params"]]
    assert decay["weight_decay"] == 0.05 and exempt["weight_decay"] == 0.0
    assert any("relative_position_bias_table" in n for n in exempt_names)
    assert all(p.ndim > 1 and "relative_position_bias_table" not in names[id(p)] for p in decay["params"])
    assert any(n.endswith("norm1.weight") for n in exempt_names) and any(n.endswith(".bias") for n in exempt_names)


def test_a_few_steps_lower_the_loss_and_eval_writes_topk(tmp_path: Path) -> None:
    write_tree(tmp_path / "data", classes=2, per_class=4)
    overrides = [f"data.root={tmp_path / 'data'}", *TINY, "train.max_steps=8", "train.batch_size=8",
                 "train.eval_interval_steps=8", "train.optimizer.lr=3e-4", "train.optimizer.lr_batch=8",
                 "data.augment.rand_augment=", "data.augment.random_erase=0", "data.augment.scale=[1.0,1.0]",
                 "data.augment.hflip=0", "data.mix.mixup_alpha=0", "data.mix.cutmix_alpha=0",
                 "train.schedule.warmup_epochs=0"]  # fmt: skip
    result = train(load_recipe("cls-t", overrides), project=tmp_path / "runs")
    with (result.run_dir / "steps.csv").open() as handle:
        losses = [float(row["train_loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 8 and losses[-1] < losses[0]
    out = tmp_path / "eval"
    cli = runner.invoke(app, ["eval", "--recipe", str(result.run_dir / "recipe.yaml"), "--weights",
                              str(result.run_dir), "--out", str(out)])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert {"top1", "top5", "loss"} <= set(metrics) and metrics["top5"] == 100.0  # 2 classes
    assert [c["samples"] for c in metrics["per_class_accuracy"]] == [4, 4]


def test_official_cls_checkpoint_converted_and_evaluated(tmp_path: Path) -> None:
    write_tree(tmp_path / "data", classes=3, per_class=1)
    torch.save({"model": reference_state_dict("cls_t_224")}, tmp_path / "hrt_tiny.pth")
    weights = tmp_path / "hrt_tiny.safetensors"
    converted = runner.invoke(app, ["convert", str(tmp_path / "hrt_tiny.pth"), str(weights)])
    assert converted.exit_code == 0, converted.output
    recipe = load_recipe("cls-t", [f"data.root={tmp_path / 'data'}", *TINY])
    result = evaluate(recipe, weights, out_dir=tmp_path / "eval")
    assert result.metrics["samples"] == 3 and 0 <= result.metrics["top1"] <= result.metrics["top5"] <= 100
    assert result.metrics["loss"] > 0
