"""The task plug-in protocol (pose, seg, cls) and the registry that finds a task by name.

A task module supplies data, model, loss and metric; the engine owns everything else (loop, optimiser,
schedule, AMP, DDP, checkpoints, logs). Evaluation is split so that it works on any number of ranks:
every rank runs `predict_batch` on its shard, the engine gathers the predictions in dataset order, and
rank 0 alone calls `compute_metrics`.

Task modules register themselves on import with `register_task(name, factory)`. The built-in tasks are
imported lazily by name; other modules can be plugged in by listing them in the `HRFORMER_PLUGINS`
environment variable (comma-separated module names), which also reaches torchrun worker processes.
"""

from __future__ import annotations

import difflib
import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.utils.data import default_collate

from hrformer_core.engine.optim import weight_decay_groups
from hrformer_core.engine.schema import DataSection, EvalSection, ModelSection
from hrformer_core.errors import UsageError

if TYPE_CHECKING:
    from hrformer_core.engine.recipes import Recipe

PLUGINS_ENV = "HRFORMER_PLUGINS"
BUILTIN_TASKS = {
    "pose": "hrformer_core.tasks.pose",
    "seg": "hrformer_core.tasks.seg",
    "cls": "hrformer_core.tasks.cls",
}


class Task(ABC):
    """What a task module implements. Subclasses set the class attributes and the abstract methods.

    `data_schema`, `model_schema` and `eval_schema` are dataclasses (subclasses of the generic sections)
    that define and type-check the task's recipe keys. `primary_metric` must be a key of
    `compute_metrics`' result; higher is better (it selects `best.safetensors`).
    """

    name: ClassVar[str]
    primary_metric: ClassVar[str]
    data_schema: ClassVar[type[DataSection]] = DataSection
    model_schema: ClassVar[type[ModelSection]] = ModelSection
    eval_schema: ClassVar[type[EvalSection]] = EvalSection
    find_unused_parameters: ClassVar[bool] = False  # for DDP, when some parameters get no gradient

    def configure(self, recipe: Recipe) -> None:
        """Called once with the resolved recipe before anything else (e.g. to keep loss or eval options)."""
        return None

    @abstractmethod
    def build_model(self, recipe: Recipe) -> nn.Module:
        """The model with its task head, on CPU, in training mode."""

    @abstractmethod
    def build_train_dataset(self, recipe: Recipe) -> torch.utils.data.Dataset:
        """A map-style dataset; may define `set_epoch(epoch)`, `worker_init_fn(worker_id)` and `bad_images`.

        `bad_images` (a collection of names) is read in the main process after training, so it must be
        filled there (e.g. while indexing), not inside DataLoader workers.
        """

    @abstractmethod
    def build_val_dataset(self, recipe: Recipe) -> torch.utils.data.Dataset:
        """A map-style dataset whose samples `compute_metrics` can match predictions to by index."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float | torch.Tensor]]:
        """(scalar loss to minimise, named parts to log); the names must be the same on every step.

        `batch` is already on the training device. `model` may be a DDP wrapper: call it, do not reach into
        its attributes.
        """

    @abstractmethod
    def predict_batch(self, model: nn.Module, batch: Any) -> list[Any]:
        """One picklable CPU prediction per sample of `batch`, in batch order (the model is in eval mode)."""

    @abstractmethod
    def compute_metrics(self, predictions: Sequence[Any], dataset: Any, out_dir: Path) -> dict[str, float]:
        """Metrics from `predictions[i]` for `dataset[i]`; may write files (e.g. result JSON) to `out_dir`."""

    def collate(self, samples: list[Any]) -> Any:
        """Samples to a batch (both DataLoaders use it); the default stacks tensors in dicts and tuples."""
        return default_collate(samples)

    def param_groups(self, model: nn.Module, recipe: Recipe) -> list[dict[str, Any]]:
        """Optimiser parameter groups; the default decays every parameter. Override for exemptions."""
        return weight_decay_groups(model, recipe.train.optimizer.weight_decay)


_factories: dict[str, Callable[[], Task]] = {}
_instances: dict[str, Task] = {}
_plugins_loaded: set[str] = set()


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Make `get_task(name)` return `factory()` (called once per process). Re-registering replaces it."""
    _factories[name] = factory
    _instances.pop(name, None)


def known_tasks() -> list[str]:
    _load_plugins()
    return sorted(set(_factories) | set(BUILTIN_TASKS))


def get_task(name: str) -> Task:
    """The task registered under `name`, importing its built-in module on first use."""
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
    if name not in _instances:
        _instances[name] = _factories[name]()
    return _instances[name]


def _load_plugins() -> None:
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        if module in _plugins_loaded:
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(f"{PLUGINS_ENV}: cannot import task module '{module}': {exc}") from None
        _plugins_loaded.add(module)
