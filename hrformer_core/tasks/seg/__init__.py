"""The segmentation task package. Importing it registers the task as "seg"."""

from ..registry import register_task
from .task import SegTask

register_task("seg", SegTask)

__all__ = ["SegTask"]
