"""The pose task package: COCO top-down data, heatmap codecs, keypoint sets, synthetic people, prediction.

Importing it registers the task as "pose".
"""

from ..registry import register_task
from .task import PoseTask

register_task("pose", PoseTask)

__all__ = ["PoseTask"]
