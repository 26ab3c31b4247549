"""YAML recipes: lookup by name, `_base_` inheritance, `key=value` overrides, `${VAR}` expansion, validation.

A recipe is a YAML mapping with `task`, `description` and the sections `model`, `data`, `train` and `eval`.
The generic keys are defined in `schema.py`; the task contributes its own dataclasses for `model`, `data`
and `eval`, so a recipe is validated against the schema of its task.
"""

from __future__ import annotations

import atexit
import difflib
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hrformer_core.engine.schema import (
    DataSection,
    EvalSection,
    ModelSection,
    TrainSection,
    coerce,
    dotted_keys,
    flatten,
    lookup,
    show,
    strip_optional,
    to_plain,
    unknown_key_message,
)
from hrformer_core.errors import UsageError
from hrformer_core.tasks import Task, get_task, known_tasks
from hrformer_core.utils.io import write_text

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

RECIPES_PACKAGE = "hrformer_core.recipes"
RECIPE_SUFFIXES = (".yaml", ".yml")
TOP_LEVEL_SAFE = ("name", "description")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Recipe:
    """A fully resolved, type-checked recipe. `source` is the file it came from (not saved)."""

    task: str
    name: str = ""
    description: str = ""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    source: Path | None = field(default=None, init=False, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the resolved recipe (loadable again with `load_recipe(path)`)."""
        return write_text(path, self.to_yaml())


@functools.cache
def builtin_recipes_dir() -> Path:
    """The built-in recipes folder: the source tree's `recipes/`, installed as the package `hrformer_core.recipes`.

    Wheel and editable installs give a folder on disk. A package imported from a zip file is copied once to a
    temporary folder, because recipes are files: `_base_` paths, `Recipe.source` and messages name them.
    """
    package = resources.files(RECIPES_PACKAGE)
    if isinstance(package, Path):
        return package
    folder = Path(tempfile.mkdtemp(prefix="hrformer-recipes-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _copy_recipe_files(package, folder)
    return folder


def _copy_recipe_files(source: Traversable, target: Path) -> None:
    for entry in source.iterdir():
        if entry.is_dir():
            _copy_recipe_files(entry, target / entry.name)
        elif entry.name.endswith(RECIPE_SUFFIXES):
            write_text(target / entry.name, entry.read_text(encoding="utf-8"))


def schema_for(task: Task) -> dict[str, Any]:
    """The recipe schema of a task: top-level keys mapped to their types."""
    return {
        "task": str,
        "name": str,
        "description": str,
        "model": task.model_schema,
        "data": task.data_schema,
        "train": TrainSection,
        "eval": task.eval_schema,
    }


def load_recipe(
    name_or_path: str | os.PathLike, overrides: Sequence[str] = (), recipes_dir: Path | None = None
) -> Recipe:
    """Load a recipe by name (built-in, or in `recipes_dir`) or path, apply dotted `key=value` overrides, and validate.

    Override values are parsed with yaml.safe_load (strings are taken verbatim for string keys); `${VAR}` and
    `${VAR:-default}` in string values are expanded from the environment.
    """
    recipes_dir = recipes_dir or builtin_recipes_dir()
    path = resolve_recipe(name_or_path, recipes_dir)
    raw = _load_merged(path, recipes_dir, ())
    raw["name"] = _read_yaml(path).get("name") or path.stem
    parsed = [_split_override(token) for token in overrides]
    task_name = next((value for key, value in reversed(parsed) if key == "task"), raw.get("task"))
    if not task_name:
        raise UsageError(f"{path}: missing key 'task' (one of: {', '.join(known_tasks())})")
    task = get_task(str(task_name))
    schema = schema_for(task)
    for key, text in parsed:
        _set_dotted(raw, key.split("."), _override_value(schema, key, text))
    try:
        recipe = build_recipe(_expand_env(raw, ""), schema)
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None
    recipe.source = path
    return recipe


def build_recipe(raw: dict[str, Any], schema: dict[str, Any]) -> Recipe:
    """A Recipe from a merged mapping, each key checked against `schema` (see `schema_for`)."""
    values = {}
    for key, value in raw.items():
        if key not in schema:
            raise UsageError(unknown_key_message(key, schema))
        values[key] = coerce(value, schema[key], key)
    for section in ("model", "data", "train", "eval"):
        values.setdefault(section, schema[section]())
    return Recipe(**values)


def resolve_recipe(name_or_path: str | os.PathLike, recipes_dir: Path | None = None) -> Path:
    """The file of a recipe given by path (`*.yaml`, or any existing file) or by name in `recipes_dir`."""
    recipes_dir = recipes_dir or builtin_recipes_dir()
    given = Path(name_or_path)
    if given.suffix in RECIPE_SUFFIXES or given.is_file():
        if not given.is_file():
            raise UsageError(f"recipe file {given} not found")
        return given.resolve()
    for suffix in RECIPE_SUFFIXES:
        candidate = recipes_dir / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate.resolve()
    names = list(_recipe_files(recipes_dir))
    close = difflib.get_close_matches(str(name_or_path), names, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"available: {', '.join(names) or 'none'}"
    raise UsageError(
        f"unknown recipe '{name_or_path}' (not a .yaml file nor a name in {recipes_dir}); {hint}"
    )


def list_recipes(recipes_dir: Path | None = None) -> list[tuple[str, str]]:
    """(name, description) of every recipe in `recipes_dir`; files starting with '_' are partial bases."""
    recipes_dir = recipes_dir or builtin_recipes_dir()
    found = []
    for name, path in _recipe_files(recipes_dir).items():
        try:
            description = str(_load_merged(path, recipes_dir, ()).get("description", ""))
        except UsageError as exc:
            description = f"(invalid: {exc})"
        found.append((name, description))
    return found


def _recipe_files(recipes_dir: Path) -> dict[str, Path]:
    """Recipe name (path below `recipes_dir`, no suffix) -> file, without the '_' partial bases."""
    files = (p for suffix in RECIPE_SUFFIXES for p in recipes_dir.rglob(f"*{suffix}"))
    named = {
        p.relative_to(recipes_dir).with_suffix("").as_posix(): p for p in files if not p.name.startswith("_")
    }
    return dict(sorted(named.items()))


def resume_safe_keys(task_name: str) -> list[str]:
    """Dotted keys that may differ when a run is resumed (they do not change what was trained so far)."""
    schema = schema_for(get_task(task_name))
    return [key for key in dotted_keys(schema) if key in TOP_LEVEL_SAFE or lookup(schema, key)[2]]


def resume_conflicts(saved: Recipe, new: Recipe) -> list[str]:
    """'key: old -> new' for each difference between two recipes that resuming must not accept."""
    if saved.task != new.task:
        return [f"task: {show(saved.task)} -> {show(new.task)}"]
    schema = schema_for(get_task(saved.task))
    old, cur = flatten(saved.to_dict()), flatten(new.to_dict())
    conflicts = []
    for key in sorted(set(old) | set(cur)):
        if old.get(key) == cur.get(key) or key in TOP_LEVEL_SAFE:
            continue
        try:
            safe = lookup(schema, key)[2]
        except UsageError:
            safe = False
        if not safe:
            conflicts.append(f"{key}: {show(old.get(key))} -> {show(cur.get(key))}")
    return conflicts


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read recipe {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(f"{path}{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of recipe keys, got {type(data).__name__}")
    return data


def _load_merged(path: Path, recipes_dir: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The recipe at `path` merged over its `_base_` chain (recursively; cycles are errors)."""
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain, path))
        raise UsageError(f"recipe inheritance cycle: {cycle}")
    data = _read_yaml(path)
    base = data.pop("_base_", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise UsageError(f"{path}: _base_: expected a recipe name or a relative .yaml path, got {show(base)}")
    if base.endswith(RECIPE_SUFFIXES):
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise UsageError(f"{path}: _base_: file {base_path} not found")
    else:
        try:
            base_path = resolve_recipe(base, recipes_dir)
        except UsageError as exc:
            raise UsageError(f"{path}: _base_: {exc}") from None
    return _deep_merge(_load_merged(base_path, recipes_dir, (*chain, path)), data)


def _deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _split_override(token: str) -> tuple[str, str]:
    key, sep, text = token.removeprefix("--").partition("=")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"override {token!r}: expected key=value, e.g. train.epochs=10")
    return key, text.strip()


def _override_value(schema: dict[str, Any], key: str, text: str) -> Any:
    """Parse and type-check one override value against the key's declared type."""
    declared, meta, _ = lookup(schema, key)
    text = _expand_text(text, key)
    quoted = text[:1] in ("'", '"')
    if strip_optional(declared)[0] is str and not quoted and text.lower() not in ("null", "~"):
        value: Any = text
    else:
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as exc:
            raise UsageError(f"{key}: cannot parse value {text!r}: {getattr(exc, 'problem', exc)}") from None
    return to_plain(coerce(value, declared, key, meta))


def _set_dotted(raw: dict[str, Any], parts: list[str], value: Any) -> None:
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        node[last] = _deep_merge(node[last], value)
    else:
        node[last] = value


def _expand_text(text: str, key: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise UsageError(f"{key}: environment variable {name} is not set (write ${{{name}:-default}})")
        return default

    return _ENV.sub(replace, text)


def _expand_env(value: Any, key: str) -> Any:
    if isinstance(value, str):
        return _expand_text(value, key)
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return value
