"""Ablation studies (`hrformer ablate`): named sets of arms that differ in one model setting, run with the same
recipe, data, seeds and budget, and reported beside the paper's Tables 7, 9 and 11."""

from .catalog import STUDIES, Arm, Study, get_study
from .report import markdown, table
from .runner import ALL_TASKS, StudyOptions, TaskOutcome, resume_study, run_study

__all__ = [
    "ALL_TASKS", "STUDIES", "Arm", "Study", "StudyOptions", "TaskOutcome", "get_study", "markdown", "resume_study",
    "run_study", "table",
]  # fmt: skip
