"""The training engine shared by every task: recipes, run folders, the training loop and torchrun launch."""

from hrformer_core.engine.distributed import launch_torchrun
from hrformer_core.engine.evaluation import evaluate
from hrformer_core.engine.optim import lr_at
from hrformer_core.engine.recipes import Recipe, list_recipes, load_recipe, resume_safe_keys
from hrformer_core.engine.task import Task, get_task, register_task
from hrformer_core.engine.trainer import TrainResult, train

__all__ = [
    "Recipe",
    "Task",
    "TrainResult",
    "evaluate",
    "get_task",
    "launch_torchrun",
    "list_recipes",
    "load_recipe",
    "lr_at",
    "register_task",
    "resume_safe_keys",
    "train",
]
