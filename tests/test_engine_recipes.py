"""Recipes: lookup, `_base_` inheritance, overrides, validation messages, env expansion, resume rules."""

from __future__ import annotations

from pathlib import Path

import engine_toy_task  # noqa: F401  (registers the "toy" task)
import pytest
import yaml

from hrformer_core.engine.recipes import (
    builtin_recipes_dir,
    list_recipes,
    load_recipe,
    resume_conflicts,
    resume_safe_keys,
)
from hrformer_core.errors import UsageError


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    write(tmp_path, "_toy_base.yaml", "task: toy\ndescription: base\ntrain: {epochs: 5, batch_size: 8}\n")
    write(
        tmp_path,
        "toy-small.yaml",
        "_base_: _toy_base\ndescription: small toy\ntrain: {epochs: 3, optimizer: {lr: 1e-3}}\n"
        "model: {width: 6}\n",
    )
    write(
        tmp_path,
        "nested/toy-tiny.yaml",
        "_base_: ../toy-small.yaml\ndescription: tiny\ndata: {num_train: 4}\n",
    )
    return tmp_path


def test_inheritance_merges_sections_and_names_from_the_leaf(recipes: Path) -> None:
    recipe = load_recipe("nested/toy-tiny", recipes_dir=recipes)
    assert recipe.name == "toy-tiny"
    assert recipe.description == "tiny"
    assert recipe.train.epochs == 3  # from toy-small
    assert recipe.train.batch_size == 8  # from the base, kept by the deep merge
    assert recipe.train.optimizer.lr == pytest.approx(1e-3)  # "1e-3" is a YAML string, read as a number
    assert recipe.train.optimizer.weight_decay == pytest.approx(0.01)  # schema default
    assert recipe.model.width == 6 and recipe.data.num_train == 4
    assert recipe.source == (recipes / "nested/toy-tiny.yaml").resolve()


def test_overrides_are_typed_and_win(recipes: Path) -> None:
    recipe = load_recipe(
        "toy-small",
        [
            "train.epochs=7",
            "train.optimizer.betas=[0.8, 0.9]",
            "--data.root=/data/001",
            "name=0123",
            "train.amp=off",
        ],
        recipes_dir=recipes,
    )
    assert recipe.train.epochs == 7
    assert recipe.train.optimizer.betas == (0.8, 0.9)
    assert recipe.data.root == "/data/001"
    assert recipe.name == "0123"  # verbatim for string keys, not YAML's octal integer
    assert recipe.train.amp == "off"  # YAML reads `off` as false


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=abc", "train.epochs: expected an integer, got 'abc'"),
        ("train.epochs=0", "train.epochs: expected an integer >= 1, got 0"),
        ("train.optimizer.lr=fast", "train.optimizer.lr: expected a number, got 'fast'"),
        ("train.optimizer.lr=.nan", "train.optimizer.lr: expected a finite number"),
        ("train.sync_bn=maybe", "train.sync_bn: expected true or false, got 'maybe'"),
        ("train.schedule.type=linear", "train.schedule.type: expected one of constant, step, poly, cosine"),
        ("train.epoch=3", "unknown recipe key 'train.epoch'; did you mean train.epochs"),
        ("model.widht=3", "did you mean model.width"),
        ("train.zzz=1", "valid keys: train.epochs, train.batch_size"),
        ("train.epochs", "expected key=value"),
    ],
)
def test_bad_overrides_name_the_key_and_the_expectation(recipes: Path, override: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        load_recipe("toy-small", [override], recipes_dir=recipes)
    assert message in str(info.value)


def test_errors_in_files_name_the_file(recipes: Path) -> None:
    bad = write(recipes, "bad.yaml", "_base_: toy-small\ntrain: {epochs: ten}\n")
    with pytest.raises(UsageError, match=r"bad\.yaml: train\.epochs: expected an integer, got 'ten'"):
        load_recipe(bad, recipes_dir=recipes)
    typo = write(recipes, "typo.yaml", "task: toy\ntrian: {epochs: 1}\n")
    with pytest.raises(UsageError, match="unknown recipe key 'trian'; did you mean train"):
        load_recipe(typo)
    broken = write(recipes, "broken.yaml", "task: toy\ntrain: [1, 2\n")
    with pytest.raises(UsageError, match=r"broken\.yaml line \d+: invalid YAML"):
        load_recipe(broken)


def test_cycles_and_missing_bases_are_reported(recipes: Path) -> None:
    write(recipes, "a.yaml", "_base_: b\ntask: toy\n")
    write(recipes, "b.yaml", "_base_: c.yaml\n")
    write(recipes, "c.yaml", "_base_: a\n")
    with pytest.raises(UsageError, match="recipe inheritance cycle: a.yaml -> b.yaml -> c.yaml -> a.yaml"):
        load_recipe("a", recipes_dir=recipes)
    orphan = write(recipes, "orphan.yaml", "_base_: toy-smal\n")
    with pytest.raises(
        UsageError, match="orphan.yaml: _base_: unknown recipe 'toy-smal'.*did you mean toy-small"
    ):
        load_recipe(orphan, recipes_dir=recipes)


def test_unknown_recipe_and_task_get_suggestions(recipes: Path) -> None:
    with pytest.raises(UsageError, match="unknown recipe 'toy-smal'.*did you mean toy-small"):
        load_recipe("toy-smal", recipes_dir=recipes)
    with pytest.raises(UsageError, match="unknown task 'tyo'"):
        load_recipe("toy-small", ["task=tyo"], recipes_dir=recipes)
    no_task = write(recipes, "no-task.yaml", "description: x\n")
    with pytest.raises(UsageError, match="missing key 'task'"):
        load_recipe(no_task)


def test_environment_variables_expand_with_defaults(recipes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        recipes, "env.yaml", "_base_: toy-small\ndata: {root: '${TOY_ROOT:-/default/coco}/images'}\n"
    )
    monkeypatch.delenv("TOY_ROOT", raising=False)
    assert load_recipe(path, recipes_dir=recipes).data.root == "/default/coco/images"
    monkeypatch.setenv("TOY_ROOT", "/mnt/coco")
    assert load_recipe(path, recipes_dir=recipes).data.root == "/mnt/coco/images"
    monkeypatch.setenv("TOY_EPOCHS", "4")
    assert load_recipe(path, ["train.epochs=${TOY_EPOCHS}"], recipes_dir=recipes).train.epochs == 4
    with pytest.raises(UsageError, match="data.root: environment variable TOY_UNSET is not set"):
        load_recipe(path, ["data.root=${TOY_UNSET}"], recipes_dir=recipes)


def test_saved_recipe_loads_back_identical(recipes: Path, tmp_path: Path) -> None:
    recipe = load_recipe(
        "toy-small", ["train.grad_clip=1.5", "train.schedule.milestones=[2, 3]"], recipes_dir=recipes
    )
    saved = recipe.save(tmp_path / "run" / "recipe.yaml")
    assert yaml.safe_load(saved.read_text())["train"]["optimizer"]["betas"] == [0.9, 0.999]
    assert load_recipe(saved) == recipe


def test_list_recipes_skips_partial_bases(recipes: Path) -> None:
    assert list_recipes(recipes) == [("nested/toy-tiny", "tiny"), ("toy-small", "small toy")]
    assert builtin_recipes_dir() == Path(__file__).resolve().parents[1] / "recipes"  # the editable checkout


def test_resume_allows_only_safe_changes(recipes: Path) -> None:
    saved = load_recipe("toy-small", recipes_dir=recipes)
    safe = load_recipe(
        "toy-small",
        ["train.epochs=9", "train.workers=0", "eval.batch_size=2", "data.root=/x", "description=longer"],
        recipes_dir=recipes,
    )
    assert resume_conflicts(saved, safe) == []
    changed = load_recipe("toy-small", ["train.batch_size=2", "train.optimizer.lr=0.1"], recipes_dir=recipes)
    assert resume_conflicts(saved, changed) == [
        "train.batch_size: 8 -> 2",
        "train.optimizer.lr: 0.001 -> 0.1",
    ]
    keys = resume_safe_keys("toy")
    assert {"train.epochs", "train.workers", "eval.batch_size", "data.root"} <= set(keys)
    assert "train.batch_size" not in keys and "data.num_train" not in keys
