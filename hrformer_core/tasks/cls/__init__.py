"""The classification task package. Importing it registers the task as "cls"."""

from ..registry import register_task
from .task import ClsTask

register_task("cls", ClsTask)

__all__ = ["ClsTask"]
