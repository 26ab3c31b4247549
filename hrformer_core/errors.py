"""Errors a user can cause. The CLI prints their one-line message and exits with `exit_code`."""

from __future__ import annotations


class HRFormerError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    exit_code = 1


class UsageError(HRFormerError):
    """Bad arguments, recipe keys, overrides or values (exit code 2, as click does)."""

    exit_code = 2


class DataError(HRFormerError):
    """A missing or malformed dataset, annotation or input file."""

    exit_code = 2


class CheckpointError(HRFormerError):
    """A corrupt, truncated, foreign or mismatching checkpoint."""

    exit_code = 2


class TrainingError(HRFormerError):
    """Training cannot continue (NaN loss, failed rank)."""

    exit_code = 1
