"""The training engine shared by every task: recipes, run folders, the training loop and torchrun launch.

Names are imported on first use: task packages build on `engine.schema` and `engine.optim`, and the
loop builds on the task packages, so eager imports here would make a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "launch_torchrun": "distributed",
    "evaluate": "evaluation",
    "lr_at": "optim",
    "Recipe": "recipes",
    "list_recipes": "recipes",
    "load_recipe": "recipes",
    "resume_safe_keys": "recipes",
    "TrainResult": "trainer",
    "train": "trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"hrformer_core.engine.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'hrformer_core.engine' has no attribute {name!r}")
