"""The classification task end to end: the ImageNet folder layout (corrupt and empty-class cases), top-k and
per-class accuracy by hand, weight-decay groups, a few training steps through the engine, and `hrformer eval` and
`hrformer predict` with the class names the weights saved."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from training_helpers import write_shapes_tree
from typer.testing import CliRunner

from hrformer_cli.app import app
from hrformer_core.engine import load_recipe, train
from hrformer_core.errors import DataError
from hrformer_core.evaluation.classification import per_class_accuracy, ranked_accuracy
from hrformer_core.tasks import get_task
from hrformer_core.tasks.cls.folder import ImageFolder

runner = CliRunner()
TINY = ["data.input_size=[32,32]", "train.workers=0", "eval.batch_size=8"]


def write_tree(root: Path, classes: int = 3, per_class: int = 2, size: int = 40) -> None:
    """train/ and val/ with shapes images of `classes` synthetic classes, and a classes.txt."""
    write_shapes_tree(root, classes, per_class, size)
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


def blank(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.zeros((3, 4, 4), np.float32)


def test_empty_and_garbage_files_are_named_and_too_many_bad_images_stop_with_the_key(tmp_path: Path) -> None:
    write_tree(tmp_path, classes=2, per_class=4)
    empty, garbage = tmp_path / "train" / "n00000000" / "1.JPEG", tmp_path / "train" / "n00000001" / "2.JPEG"
    empty.write_bytes(b"")
    garbage.write_bytes(b"not an image at all" * 10)
    (tmp_path / "train" / "n00000000" / "notes.txt").write_text("not a sample")  # other files are not samples
    (tmp_path / "train" / ".cache").mkdir()  # nor hidden folders classes
    dataset = ImageFolder(tmp_path, "train", blank, max_bad_fraction=0.25)
    assert dataset.classes == ["n00000000", "n00000001"] and len(dataset) == 8
    assert dataset[1]["index"] == 2 and dataset[6]["index"] == 7  # each replaced by the next readable image
    assert dataset.bad_images[str(empty)] == "empty file"
    assert dataset.bad_images[str(garbage)].startswith("corrupt image data, or a format OpenCV cannot decode")
    strict = ImageFolder(tmp_path, "train", blank, max_bad_fraction=0.1)  # 0.1 x 8: 1 tolerated
    strict[1]
    with pytest.raises(DataError, match=r"2 of 8 images under .*train cannot be read .*data.max_bad_fraction"):
        strict[6]


def test_split_without_class_folders_and_a_val_class_train_lacks_are_refused(tmp_path: Path) -> None:
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match=r"val: no class folders \(expected root/train/<class>/\*.JPEG"):
        ImageFolder(tmp_path, "val", blank)
    write_tree(tmp_path / "data", classes=2, per_class=1)
    (tmp_path / "data" / "val" / "n00000001").rename(tmp_path / "data" / "val" / "n99999999")
    with pytest.raises(DataError, match=r"n99999999: a class folder the training split .* does not have \(2 classes"):
        ImageFolder(tmp_path / "data", "val", blank)


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


def test_a_few_steps_lower_the_loss_and_eval_and_predict_show_the_saved_names(tmp_path: Path) -> None:
    """No augmentation (colour jitter is on when RandAugment is off: off too), one full batch per step."""
    write_tree(tmp_path / "data", classes=2, per_class=4)
    overrides = [f"data.root={tmp_path / 'data'}", *TINY, "train.max_steps=6", "train.batch_size=8",
                 "train.eval_interval_steps=6", "train.optimizer.lr=3e-4", "train.optimizer.lr_batch=8",
                 "data.augment.rand_augment=", "data.augment.color_jitter=0", "data.augment.random_erase=0",
                 "data.augment.scale=[1.0,1.0]", "data.augment.hflip=0", "data.mix.mixup_alpha=0",
                 "data.mix.cutmix_alpha=0", "train.schedule.warmup_epochs=0"]  # fmt: skip
    result = train(load_recipe("cls-t", overrides), project=tmp_path / "runs")
    with (result.run_dir / "steps.csv").open() as handle:
        losses = [float(row["train_loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 6 and losses[-1] < losses[0]
    # The training data's class folders and classes.txt names travel with the weights.
    with safe_open(str(result.run_dir / "weights" / "last.safetensors"), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["class_folders"]) == ["n00000000", "n00000001"]
    assert json.loads(meta["class_names"]) == ["disc one", "n00000001"]

    (tmp_path / "data" / "classes.txt").unlink()  # the names now come from the weights alone
    out = tmp_path / "eval"
    cli = runner.invoke(app, ["eval", "--recipe", str(result.run_dir / "recipe.yaml"), "--weights",
                              str(result.run_dir), "--out", str(out)])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert {"top1", "top5", "loss"} <= set(metrics) and metrics["top5"] == 100.0  # 2 classes
    assert [(c["name"], c["samples"]) for c in metrics["per_class_accuracy"]] == [("disc one", 4), ("n00000001", 4)]
    image = tmp_path / "data" / "val" / "n00000000" / "0.JPEG"
    shown = runner.invoke(app, ["predict", str(image), "--weights", str(result.run_dir), "--no-save"])
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.output.splitlines() if line.startswith("0.JPEG: "))
    assert sorted(part.rsplit(" ", 1)[0] for part in line[len("0.JPEG: ") :].split(", ")) == ["disc one", "n00000001"]
