"""The task registry: `get_task(name)` finds a task package by name.

Task packages register themselves on import with `register_task(name, factory)`. The built-in packages are
imported lazily by name; other modules can be plugged in by listing them in the `HRFORMER_PLUGINS`
environment variable (comma-separated module names), which also reaches torchrun worker processes.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable

from ..errors import UsageError
from .base import Task

PLUGINS_ENV = "HRFORMER_PLUGINS"
BUILTIN_TASKS = {
    "pose": "hrformer_core.tasks.pose",
    "seg": "hrformer_core.tasks.seg",
    "cls": "hrformer_core.tasks.cls",
}

_factories: dict[str, Callable[[], Task]] = {}
_plugins_loaded: set[str] = set()


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Make `get_task(name)` return `factory()`. Re-registering replaces it."""
    _factories[name] = factory


def known_tasks() -> list[str]:
    _load_plugins()
    return sorted(set(_factories) | set(BUILTIN_TASKS))


def get_task(name: str) -> Task:
    """A fresh task object for `name`, importing its built-in package on first use."""
    _load_plugins()
    if name not in _factories and name in BUILTIN_TASKS:
        module = BUILTIN_TASKS[name]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            raise UsageError(
                f"task: '{name}' is not available in this installation ({module} is missing)"
            ) from None
    if name not in _factories:
        options = known_tasks()
        close = difflib.get_close_matches(name, options, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UsageError(f"task: unknown task '{name}'; {hint}(known: {', '.join(options)})")
    return _factories[name]()


def _load_plugins() -> None:
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        if module in _plugins_loaded:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(f"{PLUGINS_ENV}: cannot import task module '{module}': {exc}") from None
        _plugins_loaded.add(module)
